using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Microsoft.ML.Cora.Llm;

/// <summary>
/// The per-sample low-rank term <c>scale * P(dropout(x) @ A_b)</c> with <c>A_b</c>: [batch, in, r] and a
/// module-owned P: r -> out. Costs O(batch * tokens * (in + out) * r); no dense per-sample matrix is built.
/// </summary>
internal static class LowRank
{
    /// <param name="x">[B, T, in]</param>
    /// <param name="a">[B, in, r]</param>
    /// <param name="p">Linear r -> out (no bias)</param>
    /// <param name="fastDropout">masks from <see cref="FastDropout"/> (same distribution) instead of libtorch's sampler</param>
    public static Tensor PerSample(Tensor x, Tensor a, nn.Module<Tensor, Tensor> p, double scale, double dropout, bool training, bool fastDropout = true)
    {
        using var scope = torch.NewDisposeScope();
        return Output(InputProduct(x, a, dropout, training, fastDropout), p, scale, x.dtype).MoveToOuterDisposeScope();
    }

    /// <summary>dropout(x) @ A_b, [B, T, r], computed in A's dtype (fp32 by default) even when the frozen LLM runs in bf16/fp16.</summary>
    public static Tensor InputProduct(Tensor x, Tensor a, double dropout, bool training, bool fastDropout = true)
    {
        using var scope = torch.NewDisposeScope();
        var h = x.dtype == a.dtype ? x : x.to(a.dtype);
        if (dropout > 0 && training) h = FastDropout.Apply(h, dropout, training: true, fastDropout);
        return torch.bmm(h, a).MoveToOuterDisposeScope();                    // [B, T, r]
    }

    /// <summary>scale * P(xa), [B, T, out], cast back to the activations' dtype.</summary>
    public static Tensor Output(Tensor xa, nn.Module<Tensor, Tensor> p, double scale, ScalarType outDtype)
    {
        using var scope = torch.NewDisposeScope();
        var y = p.call(xa).mul(Runtime.Scalars.Of(scale));                                       // [B, T, out]
        return (y.dtype == outDtype ? y : y.to(outDtype)).MoveToOuterDisposeScope();
    }
}
