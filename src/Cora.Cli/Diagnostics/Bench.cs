using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Llm;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary>Published LLaMA shapes for benchmarks with random weights (no download; the numbers depend only on the shape).</summary>
internal static class LlmShapes
{
    public static readonly IReadOnlyDictionary<string, LlamaConfig> ByName = new Dictionary<string, LlamaConfig>(StringComparer.OrdinalIgnoreCase)
    {
        ["smollm2-135m"] = new() { HiddenSize = 576, IntermediateSize = 1536, NumHiddenLayers = 30, NumAttentionHeads = 9, NumKeyValueHeads = 3, VocabSize = 49152, MaxPositionEmbeddings = 8192, RopeTheta = 100000, TieWordEmbeddings = true },
        ["tinyllama-1.1b"] = new() { HiddenSize = 2048, IntermediateSize = 5632, NumHiddenLayers = 22, NumAttentionHeads = 32, NumKeyValueHeads = 4, VocabSize = 32000, MaxPositionEmbeddings = 2048 },
        ["vicuna-7b"] = new() { HiddenSize = 4096, IntermediateSize = 11008, NumHiddenLayers = 32, NumAttentionHeads = 32, NumKeyValueHeads = 32, VocabSize = 32000, MaxPositionEmbeddings = 4096 },
        ["tiny"] = new() { HiddenSize = 64, IntermediateSize = 172, NumHiddenLayers = 2, NumAttentionHeads = 4, NumKeyValueHeads = 2, VocabSize = 512, MaxPositionEmbeddings = 512 },
    };

    public static LlamaConfig Get(string name) => ByName.TryGetValue(name, out var c) ? c.Validate(name)
        : throw new ArgumentException($"unknown shape '{name}'; use {string.Join(", ", ByName.Keys)}.");

    /// <summary>Parameters that touch every token (everything but the embedding table; the head is applied to one token).</summary>
    public static long PerTokenParams(LlamaConfig c) =>
        (long)c.NumHiddenLayers * ((long)c.HiddenSize * (c.AttentionDim + 2 * c.KvDim) + (long)c.AttentionDim * c.HiddenSize + 3L * c.HiddenSize * c.IntermediateSize);

    /// <summary>FLOPs of one forward over batch x tokens: 2 per weight per token plus QK^T and AV (full T x T, as SDPA computes it).</summary>
    public static double ForwardFlops(LlamaConfig c, int batch, int tokens) =>
        2.0 * PerTokenParams(c) * batch * tokens + 4.0 * c.NumHiddenLayers * batch * (double)tokens * tokens * c.AttentionDim;
}

/// <summary>The result of one benchmark: median and spread over repeats, and what they mean.</summary>
/// <param name="TrainableParams">Parameters the step trains (generator and P maps); 0 for a forward.</param>
internal sealed record BenchResult(string What, double MedianSeconds, double MinSeconds, double MaxSeconds, int Repeats,
    double ItemsPerSecond, string ItemUnit, double TflopsPerSecond, double PeakDeviceMiB, double PeakHostMiB, string Device, string Dtype,
    long TrainableParams = 0);

/// <summary>Forward and CoRA training-step benchmarks on random LLaMA shapes, built directly on the device in the dtype.</summary>
internal static class Bench
{
    /// <summary>A random LLM of a shape, created on <paramref name="device"/> in <paramref name="dtype"/> (never materialised in fp32 on the host).</summary>
    internal static LlamaForCausalLM RandomLlm(LlamaConfig config, Device device, ScalarType dtype, long seed = 1)
    {
        using var _ = CoraDevice.BuildScope(device, dtype);
        return LlamaForCausalLM.CreateRandom(config, seed);
    }

    public static BenchResult Forward(LlamaConfig config, string shapeName, Device device, ScalarType dtype, int batch, int tokens, int repeats = CoraDefaults.BenchRepeats)
    {
        using var llm = RandomLlm(config, device, dtype);
        llm.eval();
        using var _ = torch.no_grad();
        var ids = torch.randint(0, config.VocabSize, new long[] { batch, tokens }, dtype: ScalarType.Int64, device: device);
        var times = Time(device, repeats, () =>
        {
            using var scope = torch.NewDisposeScope();
            llm.LastTokenLogits(llm.Embed(ids), null, null, new long[] { 1 });
        });
        double med = Median(times);
        return new BenchResult($"forward {shapeName} {batch}x{tokens}", med, times.Min(), times.Max(), repeats, batch * tokens / med, "tokens/s",
            LlmShapes.ForwardFlops(config, batch, tokens) / med / 1e12, GpuMemory.PeakMiB, HostPeakMiB(), device.ToString(), CoraDevice.DtypeName(dtype));
    }

    /// <summary>
    /// One CoRA training step as <see cref="CoraModel"/> runs it: CF token -> query generator -> A_b -> collaborative weights on
    /// q,k,v,o of the frozen LLM -> Yes logit -> BCE -> backward -> AdamW on the generator and P maps. FLOPs counted: the LLM's
    /// forward and its input-gradient backward (2x forward; weights are frozen) plus the generator's forward and backward (3x).
    /// </summary>
    public static BenchResult CoraTrainStep(LlamaConfig config, string shapeName, Device device, ScalarType dtype, int batch, int tokens,
        QueryGeneratorOptions? generator = null, int rank = CoraDefaults.Rank, int cfDim = CoraDefaults.MfEmbeddingDim, int repeats = CoraDefaults.BenchRepeats)
    {
        generator ??= new QueryGeneratorOptions();
        using var llm = RandomLlm(config, device, dtype);
        llm.eval();
        QueryGenerator qg;
        CollaborativeWeights cw;
        using (CoraDevice.BuildScope(device, ScalarType.Float32))
        {
            qg = new QueryGenerator(generator, 2 * cfDim, config.HiddenSize, rank, seed: 1);
            cw = new CollaborativeWeights(llm.Sites(new[] { ProjectionKind.Q, ProjectionKind.K, ProjectionKind.V, ProjectionKind.O }), config.HiddenSize, rank, CoraDefaults.Alpha * rank / CoraDefaults.Rank, CoraDefaults.Dropout);   // alpha / r as the defaults
        }
        using var qgd = qg; using var cwd = cw;
        qg.train(); cw.train();
        // Cora's own AdamW (two moments), as training uses it: TorchSharp's keeps an AMSGrad buffer too and would inflate the peak.
        var parameters = qg.parameters().Concat(cw.parameters()).ToList();
        using var opt = new Microsoft.ML.Cora.Training.AdamW(new[] { new Microsoft.ML.Cora.Training.AdamW.Group(parameters, 0.0) }, 1e-4);
        var ids = torch.randint(0, config.VocabSize, new long[] { batch, tokens }, dtype: ScalarType.Int64, device: device);
        var cf = torch.randn(batch, 2 * cfDim, device: device);
        var y = torch.ones(batch, device: device);
        var times = Time(device, repeats, () =>
        {
            using var scope = torch.NewDisposeScope();
            var a = qg.Forward(cf);                                                          // [B, D, r]
            var logit = llm.LastTokenLogits(llm.Embed(ids), null, cw.Bind(a), new long[] { 1 }).squeeze(1).to(ScalarType.Float32);
            var loss = nn.functional.binary_cross_entropy_with_logits(logit, y);
            opt.ZeroGrad();
            loss.backward();
            opt.Step();
        });
        double med = Median(times);
        long genParams = qg.parameters().Sum(p => p.numel());
        double flops = 2 * LlmShapes.ForwardFlops(config, batch, tokens) + 6.0 * genParams * batch * generator.NumQueries;
        return new BenchResult($"cora train-step {shapeName} {batch}x{tokens}", med, times.Min(), times.Max(), repeats, batch * tokens / med, "tokens/s",
            flops / med / 1e12, GpuMemory.PeakMiB, HostPeakMiB(), device.ToString(), CoraDevice.DtypeName(dtype), parameters.Sum(p => p.numel()));
    }

    /// <summary>
    /// Peak device memory of a CoRA step on paper, in MiB: LLM weights in their dtype, the generator and P maps with gradients and
    /// two AdamW moments (fp32, 16 bytes a parameter), and activations kept for backward per layer: about 12 d + 4 I values per token
    /// in the LLM dtype (norm inputs, q/k/v/o inputs and outputs, attention output, gate/up/SiLU/product) plus the fp32 copies of
    /// the four projection inputs the low-rank terms keep (4 d x 4 bytes).
    /// </summary>
    public static double PaperPeakMiB(LlamaConfig c, ScalarType dtype, int batch, int tokens, long trainableParams)
    {
        double bytes = dtype is ScalarType.Float32 ? 4 : 2;
        double weights = (PerTokenParamsWithEmbedding(c)) * bytes;
        double trainable = trainableParams * 16.0;
        double perToken = c.NumHiddenLayers * ((12.0 * c.HiddenSize + 4.0 * c.IntermediateSize) * bytes + 16.0 * c.HiddenSize);
        return (weights + trainable + perToken * batch * tokens) / (1 << 20);
    }

    private static double PerTokenParamsWithEmbedding(LlamaConfig c) =>
        LlmShapes.PerTokenParams(c) + (double)c.VocabSize * c.HiddenSize * (c.TieWordEmbeddings ? 1 : 2) + (2.0 * c.NumHiddenLayers + 1) * c.HiddenSize;

    public static double[] Time(Device device, int repeats, Action step)
    {
        step();                                   // warm-up (allocator, kernels)
        MachineInfo.Synchronize(device);
        GpuMemory.Sample();
        var t = new double[repeats];
        for (int i = 0; i < repeats; i++)
        {
            var sw = Stopwatch.StartNew();
            step();
            MachineInfo.Synchronize(device);
            t[i] = sw.Elapsed.TotalSeconds;
            GpuMemory.Sample();
        }
        return t;
    }

    public static double Median(double[] xs)
    {
        var s = xs.OrderBy(x => x).ToArray();
        return s.Length % 2 == 1 ? s[s.Length / 2] : (s[s.Length / 2 - 1] + s[s.Length / 2]) / 2;
    }

    public static double HostPeakMiB() => Process.GetCurrentProcess().PeakWorkingSet64 / (1024.0 * 1024.0);
}

/// <summary>
/// Device memory in use (total - free from the CUDA runtime's cudaMemGetInfo, so it includes PyTorch's cached blocks), sampled
/// after every benchmark step; 0 on machines without CUDA. TorchSharp 0.107 exposes no allocator statistics.
/// </summary>
internal static class GpuMemory
{
    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    private delegate int MemGetInfo(out nuint free, out nuint total);
    private static readonly Lazy<MemGetInfo?> Fn = new(() =>
    {
        foreach (var name in new[] { "libcudart.so.13", "libcudart.so.12", "libcudart.so" })
            if (NativeLibrary.TryLoad(name, out var h) && NativeLibrary.TryGetExport(h, "cudaMemGetInfo", out var f))
                return Marshal.GetDelegateForFunctionPointer<MemGetInfo>(f);
        return null;
    });
    private static double _peak;

    public static double? UsedMiB()
    {
        if (!torch.cuda.is_available() || Fn.Value is not { } f) return null;
        return f(out var free, out var total) == 0 ? (total - free) / (1024.0 * 1024.0) : null;
    }

    public static void Sample() { if (UsedMiB() is { } u) _peak = Math.Max(_peak, u); }
    public static double PeakMiB => _peak;
}
