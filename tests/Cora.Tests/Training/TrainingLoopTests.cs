using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Runtime;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Training;
using Microsoft.ML.Cora.Methods;

namespace Cora.Tests;

[TestClass]
public class TrainingLoopTests
{
    private static TrainingOptions Options(string? ckpt) => new()
    {
        BatchSize = 4, Epochs = 1, MaxSteps = 6, ValidateEvery = 2, Patience = 0, LearningRate = 3e-3, CheckpointDirectory = ckpt,
    };

    /// <summary>Eight validation rows, four of each label, so that every validation's AUC is defined.</summary>
    private static List<Microsoft.ML.Cora.Data.Interaction> BothLabels() =>
        Slice.Valid.Skip(300).Where(r => r.Label).Take(4).Concat(Slice.Valid.Skip(300).Where(r => !r.Label).Take(4)).ToList();

    [TestMethod]
    public void InterruptedTrainingResumesFromCheckpointToTheSameResult()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();

        float[] reference;
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            var r = TrainingLoop.Train(m, rows, valid, Options(null));
            Assert.AreEqual(6, r.Steps);
            reference = m.Score(valid, 8);
        }

        string ckpt = tmp["ckpt"];
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            using var cts = new CancellationTokenSource();
            var progress = new SyncProgress(p => { if (p.Step == 3) cts.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => TrainingLoop.Train(m, rows, valid, Options(ckpt), progress, null, cts.Token));
            Assert.IsTrue(File.Exists(Path.Combine(ckpt, "state.json")), "a checkpoint was written before the interruption");
        }
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            var r = TrainingLoop.Train(m, rows, valid, Options(ckpt));
            Assert.IsTrue(r.Resumed);
            Assert.AreEqual(6, r.Steps);
            CollectionAssert.AreEqual(reference, m.Score(valid, 8), "resumed run ends with the same weights");
        }
    }

    private sealed class SimulatedKill : Exception { }

    [TestMethod]
    public void ACheckpointThatCannotBeWrittenNamesTheStepTheResumePointAndTheSpaceAndTheRunResumes()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();
        string ckpt = tmp["ckpt"];
        int saves = 0;
        try
        {
            // Saves come at steps 2, 4 and 6; the disk "fills" while the second is written.
            TrainingLoop.Checkpoints.AfterFileWritten = name =>
            {
                if (saves == 1 && name.StartsWith("optimizer-", StringComparison.Ordinal)) throw new IOException("No space left on device : 'optimizer'");
                if (name == "state.json") saves++;
            };
            using (var m = Slice.Model(CoraMethod.Cora))
            {
                var e = Assert.ThrowsExactly<IOException>(() => TrainingLoop.Train(m, rows, valid, Options(ckpt)));
                StringAssert.StartsWith(e.Message, $"Checkpoint of step 4 could not be written to {ckpt} (No space left on device : 'optimizer'): ");
                StringAssert.Contains(e.Message, "a rerun of the same command resumes from it (state.json, step 2)");
                StringAssert.Matches(e.Message, new System.Text.RegularExpressions.Regex(@"a checkpoint takes about [0-9,]+ MiB"));
                Assert.IsFalse(e.Message.Contains('\n'), "one line");
            }
        }
        finally { TrainingLoop.Checkpoints.AfterFileWritten = null; }
        using var again = Slice.Model(CoraMethod.Cora);
        var log = new List<string>();
        var r = TrainingLoop.Train(again, rows, valid, Options(ckpt), null, log.Add);
        Assert.IsTrue(r.Resumed);
        StringAssert.Contains(log.First(l => l.StartsWith("resumed")), "at step 2");
        Assert.AreEqual(6, r.Steps);
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    public void ACheckpointStoppedAtAnyOfItsFilesResumesFromACompleteSetToTheSameResult()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();
        float[] reference;
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            TrainingLoop.Train(m, rows, valid, Options(null));
            reference = m.Score(valid, 8);
        }
        // Saves come at steps 2, 4 and 6; the one at step 4 is stopped right after each of its files in turn.
        var boundaries = new[] { "current-", "optimizer-", "best-", "state.previous.json", "state.json" };
        try
        {
            for (int b = 0; b < boundaries.Length; b++)
            {
                string ckpt = tmp[$"ck{b}"];
                int saves = 0;
                var seen = new List<string>();
                TrainingLoop.Checkpoints.AfterFileWritten = name =>
                {
                    if (saves == 1) seen.Add(name);
                    if (saves == 1 && name.StartsWith(boundaries[b], StringComparison.Ordinal)) throw new SimulatedKill();
                    if (name == "state.json") saves++;
                };
                using (var m = Slice.Model(CoraMethod.Cora))
                    Assert.ThrowsExactly<SimulatedKill>(() => TrainingLoop.Train(m, rows, valid, Options(ckpt)));
                TrainingLoop.Checkpoints.AfterFileWritten = null;
                Assert.IsTrue(seen.Last().StartsWith(boundaries[b], StringComparison.Ordinal), $"stopped after {boundaries[b]}: {string.Join(", ", seen)}");
                int expectedStep = boundaries[b] == "state.json" ? 4 : 2;
                Assert.AreEqual(expectedStep, (int)System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(ckpt, "state.json")))!["Step"]!,
                    $"stopped after {boundaries[b]}: the committed set");
                using var again = Slice.Model(CoraMethod.Cora);
                var log = new List<string>();
                var r = TrainingLoop.Train(again, rows, valid, Options(ckpt), null, log.Add);
                Assert.IsTrue(r.Resumed, boundaries[b]);
                StringAssert.Contains(log.First(l => l.StartsWith("resumed")), $"at step {expectedStep}");
                CollectionAssert.AreEqual(reference, again.Score(valid, 8), $"stopped after {boundaries[b]}: the resumed run ends with the same weights");
                var left = Directory.GetFiles(ckpt).Select(Path.GetFileName).Where(n => n!.EndsWith(".safetensors")).OrderBy(n => n).ToArray();
                Assert.IsTrue(left.All(n => n!.Contains("00000006") || n!.Contains("00000004") || n!.StartsWith("best-")), "only the last two sets remain: " + string.Join(", ", left));
            }
        }
        finally { TrainingLoop.Checkpoints.AfterFileWritten = null; }
    }

    [TestMethod]
    public void ADamagedNewestCheckpointFallsBackToThePreviousOneAndSaysSo()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();
        string ckpt = tmp["ck"];
        float[] reference;
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            TrainingLoop.Train(m, rows, valid, Options(ckpt));
            reference = m.Score(valid, 8);
        }
        // Flip one byte of the newest set's trainable state (same size: only the hash can tell).
        string newest = Path.Combine(ckpt, "current-00000006.safetensors");
        var bytes = File.ReadAllBytes(newest);
        bytes[^1] ^= 0x40;
        File.WriteAllBytes(newest, bytes);
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            var log = new List<string>();
            var r = TrainingLoop.Train(m, rows, valid, Options(ckpt), null, log.Add);
            Assert.IsTrue(r.Resumed);
            StringAssert.Contains(string.Join("\n", log), "current-00000006.safetensors (current) does not match its SHA-256 in the manifest); resuming from the one before it");
            StringAssert.Contains(log.First(l => l.StartsWith("resumed")), "at step 4");
            CollectionAssert.AreEqual(reference, m.Score(valid, 8), "steps 5 and 6 trained again to the same weights");
        }
        // Both sets damaged: refused, naming both problems; nothing is trained from a mixed set.
        foreach (var f in Directory.GetFiles(ckpt, "optimizer-*.safetensors")) File.WriteAllBytes(f, new byte[10]);
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            var e = Assert.ThrowsExactly<InvalidDataException>(() => TrainingLoop.Train(m, rows, valid, Options(ckpt)));
            StringAssert.Contains(e.Message, "no complete checkpoint to resume from");
            StringAssert.Contains(e.Message, "--restart");
        }
        TrainingLoop.ClearCheckpoints(ckpt);
        Assert.AreEqual(0, Directory.GetFiles(ckpt).Length, "--restart's clear removes every set and manifest");
    }

    [TestMethod]
    public void LearningRateWarmsUpThenDecays()
    {
        Assert.AreEqual(0.1, TrainingLoop.LearningRate(1.0, 0, 10, 100), 1e-12);
        Assert.AreEqual(1.0, TrainingLoop.LearningRate(1.0, 9, 10, 100), 1e-12);
        Assert.AreEqual(1.0, TrainingLoop.LearningRate(1.0, 10, 10, 100), 1e-12);
        Assert.AreEqual(0.5, TrainingLoop.LearningRate(1.0, 55, 10, 100), 1e-12);
        Assert.AreEqual(0.0, TrainingLoop.LearningRate(1.0, 100, 10, 100), 1e-12);
        // With a floor: the same warm-up, the cosine between the peak and the floor.
        Assert.AreEqual(0.1, TrainingLoop.LearningRate(1.0, 0, 10, 100, floor: 0.08), 1e-12);
        Assert.AreEqual(0.54, TrainingLoop.LearningRate(1.0, 55, 10, 100, floor: 0.08), 1e-12);
        Assert.AreEqual(0.08, TrainingLoop.LearningRate(1.0, 100, 10, 100, floor: 0.08), 1e-12);
        Assert.AreEqual(0.08, TrainingLoop.LearningRate(1.0, 500, 10, 100, floor: 0.08), 1e-12);
    }

    [TestMethod]
    public void TheFloorIsCheckedAndLeavesOldCheckpointsResumable()
    {
        var errors = new TrainingOptions { LearningRate = 1e-4, MinLearningRate = 1e-3 }.Validate().ToList();
        Assert.AreEqual(1, errors.Count);
        StringAssert.Contains(errors[0].ToString(), "above the peak learning rate");
        Assert.AreEqual(0, new TrainingOptions { MinLearningRate = 8e-5 }.Validate().Count());
        // The run's fingerprint serialises the options: without a floor it is what it was before the option existed.
        string json = System.Text.Json.JsonSerializer.Serialize(new TrainingOptions());
        Assert.IsFalse(json.Contains("MinLearningRate"), json);
        StringAssert.Contains(System.Text.Json.JsonSerializer.Serialize(new TrainingOptions { MinLearningRate = 8e-5 }), "\"MinLearningRate\":8E-05");
    }

    [TestMethod]
    public void ATimeLimitStopsAfterTheStepItPassesValidatesAndKeepsTheBest()
    {
        var rows = Slice.Train.Skip(800).Take(16).ToList();
        var valid = BothLabels();
        using var m = Slice.Model(CoraMethod.Cora);
        var log = new List<string>();
        // A limit every step passes: one step, then a validation of that step's weights, then the stop (not at ValidateEvery = 2).
        var r = TrainingLoop.Train(m, rows, valid, Options(null) with { MaxMinutes = 1e-9 }, null, log.Add);
        Assert.AreEqual(1, r.Steps);
        Assert.IsTrue(r.StoppedEarly);
        Assert.AreEqual(1, r.ValidationCurve.Count);
        Assert.AreEqual(1, r.ValidationCurve[0].step);
        Assert.AreEqual(1, r.BestStep);
        Assert.IsTrue(log.Any(l => l.StartsWith("time limit: stopped after", StringComparison.Ordinal) && l.Contains("--max-minutes")), string.Join("\n", log));
        // A limit no step reaches changes nothing; the limit is not part of what a checkpoint must match (a stopped run resumes with another).
        using var n = Slice.Model(CoraMethod.Cora);
        Assert.AreEqual(rows.Count / 4, TrainingLoop.Train(n, rows, valid, Options(null) with { MaxMinutes = 1e6 }).Steps, "one whole pass in batches of 4");
        Assert.AreEqual(TrainingLoop.Fingerprint(n, rows, valid, Options(null))["training options"],
            TrainingLoop.Fingerprint(n, rows, valid, Options(null) with { MaxMinutes = 5 })["training options"]);
        Assert.IsFalse(System.Text.Json.JsonSerializer.Serialize(new TrainingOptions()).Contains("MaxMinutes"), "old checkpoints' fingerprints stay valid");
    }

    [TestMethod]
    public void ARunThatStoppedByPatienceIsNotTrainedFurtherWhenTheSameCommandRunsAgain()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(800).Take(48).ToList();
        var valid = BothLabels();
        var o = Options(tmp["ckpt"]) with { MaxSteps = 12, ValidateEvery = 1, Patience = 1 };
        TrainingResult first;
        float[] scores;
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            first = TrainingLoop.Train(m, rows, valid, o);
            scores = m.Score(valid, 8);
        }
        Assert.IsTrue(first.StoppedEarly && first.Steps < 12, $"the first run stops by patience (steps {first.Steps}, curve {string.Join(", ", first.ValidationCurve)})");
        var log = new List<string>();
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            var again = TrainingLoop.Train(m, rows, valid, o, null, log.Add);
            Assert.IsTrue(again.Resumed);
            Assert.IsTrue(again.StoppedEarly);
            Assert.AreEqual(first.Steps, again.Steps, "no step is trained after the early stop");
            Assert.AreEqual(first.BestStep, again.BestStep);
            Assert.AreEqual(first.BestValidationAuc, again.BestValidationAuc);
            Assert.AreEqual(first.ValidationCurve.Count, again.ValidationCurve.Count, "no validation is added");
            CollectionAssert.AreEqual(scores, m.Score(valid, 8), "the same best weights");
            Assert.IsTrue(log.Any(l => l.StartsWith($"the run stopped early at step {first.Steps} ", StringComparison.Ordinal) && l.Contains("nothing left to train")),
                string.Join("\n", log));
        }
    }

    [TestMethod]
    public void SameSeedSameResult()
    {
        var rows = Slice.Train.Skip(800).Take(16).ToList();
        var valid = BothLabels();
        float[] Run()
        {
            using var m = Slice.Model(CoraMethod.Cora);
            TrainingLoop.Train(m, rows, valid, Options(null) with { MaxSteps = 3 });
            return m.Score(valid, 8);
        }
        CollectionAssert.AreEqual(Run(), Run());
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    public void OneBufferOptimizerTrainsResumesAndSavesLikeThePerParameterOne()
    {
        // On a GPU AdamW keeps each group in one buffer; on the CPU it updates parameter by parameter. Forced here on the CPU: the
        // same run, an interrupted and resumed run, and a saved and loaded model must give the per-parameter scores.
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();
        var single = ComputePlan.Fast with { SingleBufferOptimizer = true };
        float[] Run(ComputePlan plan, string? ckpt = null, CancellationToken ct = default, IProgress<TrainingProgress>? progress = null, string? save = null)
        {
            using var m = Slice.Model(CoraMethod.Cora);
            m.Plan = plan;
            TrainingLoop.Train(m, rows, valid, Options(ckpt), progress, null, ct);
            if (save is not null) m.Save(save);
            var scores = m.Score(valid, 8);
            // The trained weights (views of the optimiser's buffer when it kept one) move like any others.
            m.To(torch.CPU, ScalarType.Float64, ScalarType.Float64);
            var wide = m.Score(valid, 8);
            m.To(torch.CPU, ScalarType.Float32, ScalarType.Float32);
            for (int i = 0; i < valid.Count; i++) Assert.AreEqual(scores[i], wide[i], 1e-4 * Math.Max(1, Math.Abs(scores[i])), $"float64 row {i}");
            CollectionAssert.AreEqual(scores, m.Score(valid, 8), "back in float32: the same scores");
            return scores;
        }
        var perParameter = Run(ComputePlan.Fast with { SingleBufferOptimizer = false });
        var oneBuffer = Run(single, save: tmp["single.zip"]);
        for (int i = 0; i < valid.Count; i++)
            Assert.AreEqual(perParameter[i], oneBuffer[i], 1e-4 * Math.Max(1, Math.Abs(perParameter[i])), $"row {i}");

        using (var loaded = CoraModel.Load(tmp["single.zip"]))
            CollectionAssert.AreEqual(oneBuffer, loaded.Score(valid, 8), "a model trained in one buffer saves and loads its weights");

        string ckpt = tmp["ckpt"];
        using (var cts = new CancellationTokenSource())
        {
            var progress = new SyncProgress(p => { if (p.Step == 3) cts.Cancel(); });
            Assert.ThrowsExactly<OperationCanceledException>(() => Run(single, ckpt, cts.Token, progress));
        }
        CollectionAssert.AreEqual(oneBuffer, Run(single, ckpt), "resumed in one buffer from a step-2 checkpoint: the same model");
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    public void TrainingInFloat64TakesTheOneBufferPathEndToEnd()
    {
        // Off float32 (as on a GPU) AdamW has no fused pass and keeps each group in one buffer by itself (AdamWTests checks the
        // rule): a float64 model trains through that path end to end and lands where one-parameter-at-a-time training does.
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();
        float[] Run(bool? singleBuffer)
        {
            using var m = Slice.Model(CoraMethod.Cora);
            m.To(torch.CPU, ScalarType.Float64, ScalarType.Float64);
            m.Plan = ComputePlan.Fast with { SingleBufferOptimizer = singleBuffer };
            TrainingLoop.Train(m, rows, valid, Options(null));
            Assert.IsTrue(m.Trainable.parameters().All(p => p.dtype == ScalarType.Float64), "trained in float64");
            return m.Score(valid, 8);
        }
        var auto = Run(null);
        var perParameter = Run(false);
        for (int i = 0; i < valid.Count; i++)
            Assert.AreEqual(perParameter[i], auto[i], 1e-6 * Math.Max(1, Math.Abs(perParameter[i])), $"row {i}");
    }

    private sealed class SyncProgress(Action<TrainingProgress> a) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => a(value);
    }
}
