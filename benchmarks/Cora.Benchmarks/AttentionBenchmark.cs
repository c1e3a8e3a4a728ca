using BenchmarkDotNet.Attributes;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Benchmarks;

/// <summary>
/// One decoder layer's attention and MLP of stories260K at a CoRA training batch (16 rows x 289 tokens, the ML-1M prompts' mean;
/// 8 heads of width 8, hidden 64, FFN 172), forward and forward + backward. Shows where the CPU training step goes: causal
/// scaled-dot-product attention against the same work written as matmul, softmax, matmul, and against the layer's MLP.
/// Run: <c>dotnet run -c Release --project benchmarks/Cora.Benchmarks -- --filter '*Attention*'</c>.
/// </summary>
[MemoryDiagnoser]
public class AttentionBenchmark
{
    private const long B = 16, H = 8, T = 289, D = 8, Hidden = 64, Ffn = 172;
    private Tensor _q = null!, _k = null!, _v = null!, _bias = null!, _x = null!, _gate = null!, _up = null!, _down = null!;

    [GlobalSetup]
    public void Setup()
    {
        torch.set_num_threads(Environment.ProcessorCount);
        var g = new torch.Generator(1);
        _q = torch.randn(new long[] { B, H, T, D }, generator: g).requires_grad_();
        _k = torch.randn(new long[] { B, H, T, D }, generator: g).requires_grad_();
        _v = torch.randn(new long[] { B, H, T, D }, generator: g).requires_grad_();
        var causal = torch.ones(T, T, dtype: ScalarType.Bool).tril();
        _bias = torch.zeros(T, T).masked_fill(causal.logical_not(), float.NegativeInfinity);    // [T, T] additive causal mask
        _x = torch.randn(new long[] { B * T, Hidden }, generator: g).requires_grad_();
        _gate = torch.randn(new long[] { Ffn, Hidden }, generator: g).mul(0.1);
        _up = torch.randn(new long[] { Ffn, Hidden }, generator: g).mul(0.1);
        _down = torch.randn(new long[] { Hidden, Ffn }, generator: g).mul(0.1);
    }

    private Tensor Sdpa() => nn.functional.scaled_dot_product_attention(_q, _k, _v, is_casual: true);                       // [B, H, T, D]

    private Tensor Manual() =>
        torch.matmul(torch.matmul(_q, _k.transpose(-1, -2)).mul(1 / Math.Sqrt(D)).add(_bias).softmax(-1), _v);          // [B, H, T, D]

    private Tensor Narrow() =>
        Microsoft.ML.Cora.Llm.Kernels.NarrowHeadAttention.Causal(_q.transpose(1, 2), _k.transpose(1, 2), _v.transpose(1, 2));   // [B, T, H, D]

    private Tensor Mlp() =>
        nn.functional.linear(nn.functional.silu(nn.functional.linear(_x, _gate)).mul(nn.functional.linear(_x, _up)), _down);   // [B*T, 64]

    private static float Run(Func<Tensor> f, bool backward)
    {
        using var scope = torch.NewDisposeScope();
        if (!backward)
        {
            using var _ = torch.no_grad();
            return f().sum().item<float>();
        }
        var s = f().sum();
        s.backward();
        return s.item<float>();
    }

    [Benchmark(Description = "SDPA causal, forward")] public float SdpaForward() => Run(Sdpa, false);
    [Benchmark(Description = "SDPA causal, forward + backward")] public float SdpaBackward() => Run(Sdpa, true);
    [Benchmark(Description = "matmul-softmax-matmul, forward")] public float ManualForward() => Run(Manual, false);
    [Benchmark(Description = "matmul-softmax-matmul, forward + backward")] public float ManualBackward() => Run(Manual, true);
    [Benchmark(Description = "NarrowHeadAttention, forward")] public float NarrowForward() => Run(Narrow, false);
    [Benchmark(Description = "NarrowHeadAttention, forward + backward")] public float NarrowBackward() => Run(Narrow, true);
    [Benchmark(Description = "MLP (SwiGLU), forward + backward")] public float MlpBackward() => Run(Mlp, true);
}
