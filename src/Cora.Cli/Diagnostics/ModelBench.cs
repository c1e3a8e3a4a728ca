using System.Diagnostics;
using Microsoft.ML.Cora.Data;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary>
/// Figures of one measured workload on a real model: median seconds per repeat and spread, rows/s, peak host working set, the
/// threads libtorch used, the FLOPs the work needs (the floor's numerator) and, when profiled, seconds per repeat by phase.
/// </summary>
internal sealed record WorkloadFigures(string What, double MedianSeconds, double MinSeconds, double MaxSeconds, int Repeats, int RowsPerRepeat,
    double RowsPerSecond, double PeakHostMiB, int Threads, double FlopsPerRepeat, IReadOnlyList<(string phase, double seconds)> Phases)
{
    /// <summary>Achieved GFLOP/s (the FLOPs the work needs over the median time).</summary>
    public double Gflops => FlopsPerRepeat / MedianSeconds / 1e9;
}

/// <summary>
/// Benchmarks of a <see cref="CoraModel"/> as training and scoring run it: a training step (forward, BCE, backward, AdamW) and
/// batch scoring. Each repeat takes the next rows, so tokenising is measured as a first epoch sees it. The model's
/// <see cref="CoraModel.Plan"/> decides how it computes; the paper's way is <see cref="Microsoft.ML.Cora.Reference.PaperForward"/>
/// under <see cref="ComputePlan.Plain"/>.
/// </summary>
internal static class ModelBench
{
    /// <summary>Median over <paramref name="repeats"/> training steps of <paramref name="batch"/> rows (one warm-up step first): what the
    /// trainer does each step (forward, loss read on the host, backward, finite check of the gradients, AdamW). fusedOptimizer: AdamW's
    /// fused CPU pass where it applies (false: libtorch operations, as on a GPU). logits: how a batch's logits are computed (the
    /// model's own forward unless given, e.g. <see cref="Microsoft.ML.Cora.Reference.PaperForward.Logits"/>).</summary>
    public static WorkloadFigures TrainStep(CoraModel model, IReadOnlyList<Interaction> rows, int batch, int repeats, bool profile = false, bool fusedOptimizer = true,
        Func<IReadOnlyList<Interaction>, Tensor>? logits = null)
    {
        if (!model.UsesLlm) throw new ArgumentException("mf has no LLM training step; benchmark the cora, collm or llm-lora method.", nameof(model));
        Require(rows, "train-step");
        var parameters = model.Trainable.parameters().ToList();
        using var opt = new Microsoft.ML.Cora.Training.AdamW(new[] { new Microsoft.ML.Cora.Training.AdamW.Group(parameters, CoraDefaults.WeightDecay) }, CoraDefaults.LearningRate)
        {
            SingleBuffer = model.Plan.SingleBufferOptimizer, Fused = fusedOptimizer,
        };
        var phases = profile ? new PhaseProfile { SynchronizeOn = model.Device } : null;
        int next = 0, calls = 0;
        double flops = 0;
        model.Trainable.train();
        try
        {
            var times = Bench.Time(model.Device, repeats, () =>
            {
                var slice = Enumerable.Range(next, batch).Select(i => rows[i % rows.Count]).ToList();
                next += batch;
                var timing = calls++ > 0 ? phases : null;                   // the warm-up step is neither timed nor counted
                if (calls > 1) flops += TrainFlops(model, slice);
                model.Profile = timing;
                using var scope = torch.NewDisposeScope();
                var l = logits is null ? model.Logits(slice) : logits(slice);
                Tensor loss;
                using (PhaseProfile.Time(timing, "loss"))
                {
                    var y = torch.tensor(slice.Select(r => r.Label ? 1f : 0f).ToArray(), device: l.device);
                    loss = nn.functional.binary_cross_entropy_with_logits(l, y);
                    _ = loss.item<float>();                                  // the trainer reads the loss every step
                }
                using (PhaseProfile.Time(timing, "backward"))
                {
                    opt.ZeroGrad();
                    loss.backward();
                }
                using (PhaseProfile.Time(timing, "optimizer step"))
                {
                    if (!opt.GradientsFinite()) throw new Microsoft.ML.Cora.Runtime.TrainingDivergedException("bench train-step: the gradients are not finite.");
                    opt.Step();
                }
            });
            return Figures($"train-step batch {batch}", times, batch, flops / repeats, phases, repeats);
        }
        finally
        {
            model.Profile = null;
            model.Trainable.eval();
            model.Trainable.zero_grad(set_to_none: true);
        }
    }

    /// <summary>Median over <paramref name="repeats"/> scorings of <paramref name="rowsPerRepeat"/> rows each, in batches of <paramref name="batch"/>.</summary>
    public static WorkloadFigures Score(CoraModel model, IReadOnlyList<Interaction> rows, int batch, int rowsPerRepeat, int repeats, bool profile = false)
        => Measure(model, rows, batch, rowsPerRepeat, repeats, profile, "score", slice => model.Score(slice, batch));

    /// <summary>Like <see cref="Score"/> through any scorer (e.g. ML.NET's Transform over the same rows).</summary>
    public static WorkloadFigures Measure(CoraModel model, IReadOnlyList<Interaction> rows, int batch, int rowsPerRepeat, int repeats, bool profile,
        string what, Func<IReadOnlyList<Interaction>, float[]> score)
    {
        Require(rows, what);
        var phases = profile ? new PhaseProfile { SynchronizeOn = model.Device } : null;
        int next = 0, calls = 0;
        double flops = 0;
        try
        {
            var times = Bench.Time(model.Device, repeats, () =>
            {
                // Each repeat scores other rows (a fresh prompt cache), as a first pass over data does.
                var slice = Enumerable.Range(next, rowsPerRepeat).Select(i => CopyOf(rows[i % rows.Count])).ToList();
                next += rowsPerRepeat;
                model.Profile = calls++ > 0 ? phases : null;               // the warm-up pass is neither timed nor counted
                if (calls > 1) flops += ScoreFlops(model, slice);
                score(slice);
            });
            return Figures($"{what} batch {batch}", times, rowsPerRepeat, flops / repeats, phases, repeats);
        }
        finally { model.Profile = null; }
    }

    private static Interaction CopyOf(Interaction r) => r with { };

    private static void Require(IReadOnlyList<Interaction> rows, string what)
    {
        if (rows.Count == 0) throw new ArgumentException($"{what}: no rows to benchmark.", nameof(rows));
    }

    private static WorkloadFigures Figures(string what, double[] times, int rowsPerRepeat, double flops, PhaseProfile? phases, int repeats)
    {
        double med = Bench.Median(times);
        var split = phases?.Phases.Select(p => (p.phase, p.seconds / repeats)).ToList() ?? new List<(string, double)>();
        return new WorkloadFigures(what, med, times.Min(), times.Max(), times.Length, rowsPerRepeat, rowsPerRepeat / med, Bench.HostPeakMiB(),
            torch.get_num_threads(), flops, split);
    }

    /// <summary>FLOPs a scoring of these rows needs: the LLM forward over the real tokens (no padding) with the low-rank terms, and the
    /// generator's forward with the exact savings (head once per sample, no query/key projections against the single CF token).</summary>
    public static double ScoreFlops(CoraModel model, IReadOnlyList<Interaction> rows) =>
        rows.Sum(r => LlmForwardFlops(model, model.Tokenize(r).Ids.Length)) + rows.Count * GeneratorForwardFlops(model);

    /// <summary>FLOPs of a training step: the LLM forward and its input-gradient backward (about 2x forward: the weights are
    /// frozen, so no weight gradients), the trainable parts' forward and backward (3x forward).</summary>
    public static double TrainFlops(CoraModel model, IReadOnlyList<Interaction> rows) =>
        rows.Sum(r => 2 * LlmForwardFlops(model, model.Tokenize(r).Ids.Length)) + 3.0 * rows.Count * GeneratorForwardFlops(model);

    private static double LlmForwardFlops(CoraModel model, int tokens)
    {
        var c = model.Llm!.Config;
        double dense = 2.0 * LlmShapes.PerTokenParams(c) * tokens;
        double attention = 2.0 * c.NumHiddenLayers * (double)tokens * (tokens + 1) / 2 * c.AttentionDim;   // causal QK^T and AV: 2 x (T(T+1)/2) x d x 2 FLOPs
        double lowRank = 0;
        if (model.Trainable is Microsoft.ML.Cora.Methods.CollaborativeLoraParts { collaborative_weights: var cw })
        {
            foreach (var lin in cw.p.values()) lowRank += 2.0 * tokens * lin.weight!.numel();                // P: r -> out per token
            lowRank += 2.0 * tokens * c.HiddenSize * model.Options.Rank * c.NumHiddenLayers * 2;           // x·A: shared by q,k,v and for o
        }
        if (((model.Trainable as Microsoft.ML.Cora.Methods.LoraParts)?.lora ?? (model.Trainable as Microsoft.ML.Cora.Methods.CollmParts)?.lora) is { } lora)
            foreach (var (_, p) in lora.named_parameters()) lowRank += 2.0 * tokens * p.numel();
        return dense + attention + lowRank;
    }

    private static double GeneratorForwardFlops(CoraModel model)
    {
        if (model.Generator is not { } qg) return 0;
        int q = model.Options.QueryGenerator.NumQueries;
        double perQuery = 0;
        foreach (var layer in qg.layers)
            foreach (var (name, p) in layer.named_parameters())
            {
                if (p.dim() < 2) continue;
                if (name.StartsWith("cross_attention.query") || name.StartsWith("cross_attention.key")) continue;   // skipped (single key)
                if (name.StartsWith("cross_attention.value")) { perQuery += p.numel() / (double)q; continue; }     // once per sample
                perQuery += p.numel();
            }
        return 2.0 * (perQuery * q + qg.head.weight!.numel());
    }

    /// <summary>libtorch's fp32 matmul GFLOP/s on this device and thread count (the peak the floor is measured against).</summary>
    public static double MatmulPeakGflops(Device device, int n = 1024, double seconds = 1.0) =>
        MachineInfo.MatmulGflops(device, ScalarType.Float32, n, seconds);
}
