using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary><c>--ema</c>: validation and the kept weights read a moving average of the trained weights.</summary>
[TestClass]
public class WeightAverageTests
{
    private static TrainingOptions Options(double ema, string? ckpt = null) => new()
    {
        BatchSize = 4, Epochs = 1, MaxSteps = 6, ValidateEvery = 2, Patience = 0, LearningRate = 3e-3, Ema = ema, CheckpointDirectory = ckpt,
    };

    [TestMethod]
    public void TheAverageFollowsItsFormulaSwapsInAndOutAndRoundTrips()
    {
        using var layer = nn.Linear(3, 2);
        float[] Weights() => layer.weight!.data<float>().ToArray();
        void Set(float v) { using var _ = no_grad(); layer.weight!.fill_(v); layer.bias!.fill_(-v); }
        Set(1);
        using var average = new WeightAverage(layer, 0.9);
        Assert.AreEqual(2.0 / 11, average.NextDecay, 1e-12, "the first update keeps little of the starting weights");
        Set(3);
        average.Update();
        float first = (float)(2.0 / 11 * 1 + 9.0 / 11 * 3);
        Set(5);
        double d2 = average.NextDecay;
        Assert.AreEqual(3.0 / 12, d2, 1e-12);
        average.Update();
        float second = (float)(d2 * first + (1 - d2) * 5);
        Assert.AreEqual(2, average.Updates);

        using (average.Swapped())
        {
            foreach (float w in Weights()) Assert.AreEqual(second, w, 1e-5f, "the average is in the module");
            foreach (float b in layer.bias!.data<float>().ToArray()) Assert.AreEqual(-second, b, 1e-5f, "biases are averaged too");
        }
        foreach (float w in Weights()) Assert.AreEqual(5f, w, "the weights are back after the scope");

        // Reset starts again from the weights as they are.
        using (var again = new WeightAverage(layer, 0.9))
        {
            Set(7);
            again.Update();
            again.Reset();
            Assert.AreEqual(0, again.Updates);
            using (again.Swapped()) foreach (float w in Weights()) Assert.AreEqual(7f, w, "the average restarts at the weights");
            Set(5);
        }

        // The ramp ends at the decay given.
        for (int i = 0; i < 200; i++) average.Update();
        Assert.AreEqual(0.9, average.NextDecay, 1e-12);

        // A saved average loads into another with its count of updates.
        var saved = average.State.ToDictionary(kv => kv.Key, kv => kv.Value.clone());
        using var other = nn.Linear(3, 2);
        using var restored = new WeightAverage(other, 0.9);
        restored.Load(name => saved[name].clone(), average.Updates);
        Assert.AreEqual(average.Updates, restored.Updates);
        using (restored.Swapped())
            CollectionAssert.AreEqual(saved["weight"].data<float>().ToArray(), other.weight!.data<float>().ToArray());
        foreach (var t in saved.Values) t.Dispose();

        foreach (double bad in new[] { 0.0, 1.0, -0.5, double.NaN })
            Assert.ThrowsExactly<ArgumentOutOfRangeException>(() => new WeightAverage(layer, bad), $"decay {bad}");
    }

    [TestMethod]
    public void TrainingWithItIsSeededDiffersResumesToTheSameWeightsAndIsPartOfTheCheckpoint()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();
        float[] Run(TrainingOptions o)
        {
            using var m = Slice.Model(CoraMethod.Cora);
            var r = TrainingLoop.Train(m, rows, valid, o);
            Assert.AreEqual(6, r.Steps);
            return m.Score(valid, 8);
        }
        var without = Run(Options(0));
        var reference = Run(Options(0.5));
        CollectionAssert.AreEqual(reference, Run(Options(0.5)), "same seed, same average");
        CollectionAssert.AreNotEqual(without, reference, "the kept weights are the average, not the last step's");

        // Stopped after step 3 (the checkpoint of step 2 holds the average), then the same command again.
        string ckpt = tmp["ckpt"];
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            using var cts = new CancellationTokenSource();
            var progress = new Progress(p => { if (p.Step == 3) cts.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => TrainingLoop.Train(m, rows, valid, Options(0.5, ckpt), progress, null, cts.Token));
        }
        Assert.AreEqual(1, Directory.GetFiles(ckpt, "average-*.safetensors").Length, "the checkpoint holds the average");
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            var r = TrainingLoop.Train(m, rows, valid, Options(0.5, ckpt));
            Assert.IsTrue(r.Resumed);
            CollectionAssert.AreEqual(reference, m.Score(valid, 8), "the resumed run continues the average to the same weights");
        }

        // Without it, no average is written; another decay does not resume this run's checkpoint.
        string plain = tmp["plain"];
        Run(Options(0, plain));
        Assert.AreEqual(0, Directory.GetFiles(plain, "average-*.safetensors").Length);
        using var n = Slice.Model(CoraMethod.Cora);
        Assert.AreNotEqual(TrainingLoop.Fingerprint(n, rows, valid, Options(0.5))["training options"], TrainingLoop.Fingerprint(n, rows, valid, Options(0.9))["training options"]);
        Assert.IsFalse(System.Text.Json.JsonSerializer.Serialize(new TrainingOptions()).Contains("Ema"), "checkpoints made before the option stay resumable");
        foreach (var bad in new[] { -0.1, 1.0, double.NaN })
            Assert.AreEqual("Ema", new TrainingOptions { Ema = bad }.Validate().Single().Option, $"{bad} is refused");
    }

    private sealed class Progress(Action<TrainingProgress> a) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => a(value);
    }
}
