using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Prompting;
using Microsoft.ML.Cora.Reference;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary>
/// The fast path gives the numbers of the paper's way (<see cref="PaperForward"/>, the reference implementation) under every plan
/// (<see cref="ComputePlan.Fast"/>, <see cref="ComputePlan.Plain"/> and each choice alone): logits within 1e-5, the same AUC, the same
/// loss and gradients; the one shortcut that touches randomness (attention dropout against the single CF token) keeps its distribution.
/// </summary>
[TestClass]
public class FastPathTests
{
    private static List<Interaction> Rows => Slice.Valid.Take(40).ToList();

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    public void EveryPlanScoresAsThePapersForward()
    {
        foreach (var method in new[] { CoraMethod.Cora, CoraMethod.Collm, CoraMethod.LlmLora })
        {
            using var model = Slice.Model(method);
            model.GeneratorDtype = "fp32";   // the plans are exact; the generator's bf16 products are not (GeneratorBf16Tests)
            Randomise(model);
            var rows = Rows;
            model.Plan = ComputePlan.Plain;
            var paper = PaperForward.Score(model, rows, batchSize: 7);
            foreach (var plan in Switches())
            {
                model.Plan = plan;
                var fast = model.Score(rows, batchSize: 7);
                for (int i = 0; i < rows.Count; i++)
                    Assert.AreEqual(paper[i], fast[i], 1e-5 * Math.Max(1, Math.Abs(paper[i])), $"{method}, row {i}, plan {plan}");   // float rounding only
            }
            var labels = rows.Select(r => r.Label).ToArray();
            Assert.AreEqual(Microsoft.ML.Cora.Evaluation.Metrics.Auc(paper, labels), Microsoft.ML.Cora.Evaluation.Metrics.Auc(model.Score(rows), labels), 1e-9, method.ToString());
        }
    }

    [TestMethod]
    public void ScoringStreamsGiveTheSameScoresAndNeverTouchTheCallersThreads()
    {
        using var m = Slice.Model(CoraMethod.Cora);
        DeviceMoveTests.RandomiseP(m, 0.05);
        var rows = Slice.Valid.Take(300).ToList();   // several chunks of the generator's 128 rows
        int threads = torch.get_num_threads();
        m.Plan = ComputePlan.Fast with { ScoringStreams = false };
        var one = m.Score(rows, 8);
        m.Plan = ComputePlan.Fast;
        // Whether this CPU runs streams is measured; here two are forced, so that they are compared whatever the CPU.
        CpuChoices.Override = s => s == CpuChoices.ScoringStreamsSwitch ? "2" : null;
        float[] streams;
        try { streams = m.Score(rows, 8); }
        finally { CpuChoices.Override = null; }
        double diff = one.Zip(streams).Max(x => Math.Abs(x.First - x.Second));
        Assert.IsTrue(diff <= 1e-5 * (1 + one.Max(Math.Abs)), $"max |diff| {diff:E2}");
        Assert.AreEqual(threads, torch.get_num_threads(), "the caller's libtorch threads are unchanged");
        // A count set on a stream's thread becomes the default of threads created later (libgomp): the streams set it back.
        int onNewThread = 0;
        var probe = new Thread(() => onNewThread = torch.get_num_threads());
        probe.Start(); probe.Join();
        Assert.AreEqual(CoraDevice.Threads, onNewThread, "a thread created after the streams has the process's libtorch count");
        using var cts = new CancellationTokenSource();
        cts.Cancel();
        CpuChoices.Override = s => s == CpuChoices.ScoringStreamsSwitch ? "2" : null;
        try { Assert.ThrowsExactly<OperationCanceledException>(() => m.Score(rows, 8, cts.Token), "cancellation reaches the streams"); }
        finally { CpuChoices.Override = null; }
    }

    [TestMethod]
    public void LengthGroupsGiveTheSameLossAndGradients() => SameLossAndGradients(ComputePlan.Fast with { LengthGroups = false }, ComputePlan.Fast, split: true);

    [TestMethod]
    [DataRow(CoraMethod.Cora)]
    [DataRow(CoraMethod.Collm)]
    [DataRow(CoraMethod.LlmLora)]
    public void ThePapersForwardGivesTheSameLossAndGradients(CoraMethod method) =>
        SameLossAndGradients(ComputePlan.Plain, ComputePlan.Fast, split: true, method, plainLogits: PaperForward.Logits);

    [TestMethod]
    [DataRow(CoraMethod.Cora)]
    [DataRow(CoraMethod.Collm)]
    [DataRow(CoraMethod.LlmLora)]
    public void NarrowHeadKernelGivesTheSameLossAndGradients(CoraMethod method)
    {
        // Whether this CPU runs the kernel is measured; here it is forced on, so that it is compared whatever the CPU.
        CpuChoices.Override = s => s == CpuChoices.AttentionKernelSwitch ? "narrow-head" : null;
        try { SameLossAndGradients(ComputePlan.Fast with { NarrowHeadKernel = false }, ComputePlan.Fast, split: true, method); }
        finally { CpuChoices.Override = null; }
    }

    /// <param name="plainLogits">how the first run computes its logits (the model's own forward unless given)</param>
    private static void SameLossAndGradients(ComputePlan plain, ComputePlan fast, bool split, CoraMethod method = CoraMethod.Cora,
        Func<CoraModel, IReadOnlyList<Interaction>, Tensor>? plainLogits = null)
    {
        var options = Slice.SmallOptions(method);
        using var model = new CoraModel(options with { Dropout = 0, QueryGenerator = options.QueryGenerator with { Dropout = 0 } },
            Microsoft.ML.Cora.Llm.LanguageModel.Load(Slice.LlmPath), Slice.SmallMf(), Slice.Items) { GeneratorDtype = "fp32" };
        Randomise(model);
        // A batch with a wide spread of prompt lengths, so that the split is taken.
        var byLength = Slice.Train.Take(400).OrderBy(r => r.History.Length).ToList();
        var rows = byLength.Take(8).Concat(byLength.TakeLast(8)).ToList();
        if (split) Assert.IsNotNull(CoraModel.LengthGroups(rows.Select(model.Tokenize).ToList(), 4), "the test batch must be split into length groups");
        var grads = new List<Tensor[]>();
        var losses = new List<float>();
        foreach (var plan in new[] { plain, fast })
        {
            model.Plan = plan;
            model.Trainable.train();
            model.Trainable.zero_grad();
            using var scope = torch.NewDisposeScope();
            var logits = plan == plain && plainLogits is not null ? plainLogits(model, rows) : model.Logits(rows);
            var loss = nn.functional.binary_cross_entropy_with_logits(logits, torch.tensor(rows.Select(r => r.Label ? 1f : 0f).ToArray()));
            loss.backward();
            losses.Add(loss.item<float>());
            grads.Add(model.Trainable.parameters().Select(p => (p.grad?.detach().clone() ?? torch.zeros_like(p)).MoveToOuterDisposeScope()).ToArray());
        }
        // fp32 summed in another order (the kernel's vector width depends on the CPU): the loss agrees to 1e-5 of its size, the
        // bound the other paths in this file use; a wrong mask or scale moves it by orders of magnitude more.
        Assert.AreEqual(losses[0], losses[1], 1e-5 * (1 + Math.Abs(losses[0])));
        double largest = grads[0].Max(g => (double)g.abs().max().item<float>());
        for (int i = 0; i < grads[0].Length; i++)
        {
            double scale = grads[0][i].abs().max().item<float>() + 1e-8;
            double diff = grads[0][i].sub(grads[1][i]).abs().max().item<float>();
            Assert.IsTrue(diff <= 1e-4 * scale + 1e-6 * largest, $"gradient {i} ({model.Trainable.named_parameters().ElementAt(i).name}) differs by {diff:E2} (largest entry {scale:E2})");
        }
        Assert.IsTrue(grads[0].Any(g => g.abs().max().item<float>() > 0), "the gradients must not all be zero");
        model.Trainable.eval();
    }

    [TestMethod]
    public void APlanWithoutOneSavingTurnsOffThatSavingOnly()
    {
        CollectionAssert.IsSubsetOf(new[] { "NarrowHeadKernel", "LengthGroups", "InferenceMode" }, ComputePlan.SwitchNames.ToArray());
        Assert.IsFalse(ComputePlan.SwitchNames.Contains("LengthGroupRows"), "only on/off savings are switches");
        foreach (var name in ComputePlan.SwitchNames)
        {
            var plan = ComputePlan.Fast.Without(name.ToLowerInvariant());
            foreach (var other in ComputePlan.SwitchNames)
                Assert.AreEqual(other != name, (bool)typeof(ComputePlan).GetProperty(other)!.GetValue(plan)!, $"without {name}: {other}");
        }
        Assert.IsTrue(ComputePlan.Fast.LengthGroups, "Without returns a copy");
        var e = Assert.ThrowsExactly<ArgumentException>(() => ComputePlan.Fast.Without("Bogus"));
        StringAssert.Contains(e.Message, "'Bogus'");
        StringAssert.Contains(e.Message, "LengthGroups");
    }

    [TestMethod]
    public void LengthGroupsAreTakenOnlyWhenTheySavePadding()
    {
        static TokenizedPrompt P(int n) => new(Enumerable.Repeat(5, n).ToArray(), Array.Empty<(int, string)>(), 0);
        Assert.IsNull(CoraModel.LengthGroups(Enumerable.Range(0, 16).Select(i => P(200 + i)).ToList(), 4), "near-equal lengths: one group");
        var groups = CoraModel.LengthGroups(Enumerable.Range(0, 16).Select(i => P(i % 2 == 0 ? 100 : 400)).ToList(), 4)!;
        Assert.AreEqual(4, groups.Count);
        CollectionAssert.AreEquivalent(Enumerable.Range(0, 16).Select(i => (long)i).ToArray(), groups.SelectMany(g => g).ToArray());
        Assert.IsTrue(groups[0].All(i => i % 2 == 0) && groups[1].All(i => i % 2 == 0), "the short rows go together");
        Assert.IsNull(CoraModel.LengthGroups(new[] { P(10), P(400) }, 4), "too few rows to split");
        // Only on the CPU: on a GPU each group is another pass of kernel launches.
        Assert.IsTrue(CoraModel.GroupsByLength(ComputePlan.Fast, DeviceType.CPU));
        Assert.IsFalse(CoraModel.GroupsByLength(ComputePlan.Fast, DeviceType.CUDA));
        Assert.IsFalse(CoraModel.GroupsByLength(ComputePlan.Fast with { LengthGroups = false }, DeviceType.CPU));
    }

    [TestMethod]
    public void SingleKeyShortcutMatchesAttentionAndKeepsTheDropoutDistribution()
    {
        var a = new BertAttention("cross_attention", 32, 12, 4, 0.25);
        var x = torch.randn(64, 4, 32);
        var source = torch.randn(64, 1, 12);
        a.eval();
        var full = PaperForward.Attention(a, x, source, heads: 4, dropout: 0.25, training: false);
        var fast = a.Forward(x, source);
        Assert.IsTrue(full.allclose(fast, rtol: 1e-5, atol: 1e-5), "eval: the shortcut equals softmax attention over one key");

        // Training: every (row, query, head) keeps the value with probability 1 - p, scaled by 1 / (1 - p), else reads zero,
        // as SDPA's dropout of the single attention weight does.
        a.train();
        using var _ = torch.no_grad();
        var v = a.value.call(source).view(64, 1, 4, 8);                                     // [B, 1, h, hd]
        var ratio = a.Attend(x, source).view(64, 4, 4, 8).div(v);                          // [B, Q, h, hd]: 0 or 1 / (1 - p)
        var kept = ratio.gt(0.5);
        Assert.IsTrue(ratio.masked_fill(kept.logical_not(), 1 / 0.75).sub(1 / 0.75).abs().max().item<float>() < 1e-4, "kept values are scaled by 1 / (1 - p)");
        Assert.IsTrue(ratio.masked_fill(kept, 0).abs().max().item<float>() < 1e-6, "dropped values are zero");
        var perHead = kept.all(-1).to(ScalarType.Float32).mean().item<float>();
        Assert.AreEqual(kept.to(ScalarType.Float32).mean().item<float>(), perHead, 1e-6, "a head's weight is dropped as a whole");
        Assert.AreEqual(0.75, perHead, 0.06, "keep rate 1 - p");
    }

    private static IEnumerable<ComputePlan> Switches()
    {
        var fast = ComputePlan.Fast;
        yield return fast;
        yield return ComputePlan.Plain;
        yield return fast with { CachePrompts = false };
        yield return fast with { BucketByLength = false };
        yield return fast with { InferenceMode = false };
        yield return fast with { LengthGroups = false };
        yield return fast with { NarrowHeadKernel = false };
        yield return fast with { NormAndRotaryKernels = false };
        yield return fast with { ScoringStreams = false };
        yield return fast with { GeneratorChunks = false };
        yield return fast with { GeneratorChunkRows = 14 };      // chunks of two batches of 7: 40 rows in three chunks
    }

    /// <summary>Non-zero trainable weights (P and LoRA B start at zero, which would hide any difference in the low-rank path).</summary>
    private static void Randomise(CoraModel model)
    {
        using var _ = torch.no_grad();
        var g = new torch.Generator(7);
        foreach (var p in model.Trainable.parameters()) p.add_(torch.randn(p.shape, generator: g).mul(0.05));
    }
}
