using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Llm.Kernels;

/// <summary>The measured choice between libtorch's attention and <see cref="NarrowHeadAttention"/> (a <see cref="CpuChoices"/> switch).</summary>
internal static class AttentionKernelChoice
{
    /// <summary>
    /// Which causal attention is faster for float32 heads of this shape on this CPU, forward and backward: "libtorch"
    /// (scaled-dot-product attention), "narrow-head" (<see cref="NarrowHeadAttention"/> with 256-bit vectors) or, where the CPU has
    /// AVX-512 and the heads are 8 wide, "narrow-head-512" (the same kernel 16 keys at a time). Heads wider than the kernel takes
    /// are libtorch's without measuring. <see cref="Kernel"/> turns the decision into an <see cref="AttentionKernel"/>.
    /// </summary>
    public static MeasuredChoice For(int heads, int kvHeads, int headDim, int rows = 4, int tokens = 256) =>
        CpuChoices.Decide(CpuChoices.AttentionKernelSwitch, $"attn:{heads}:{kvHeads}:{headDim}:{rows}:{tokens}", () =>
        {
            if (headDim > NarrowHeadAttention.MaxHeadDim || !System.Runtime.Intrinsics.Vector256.IsHardwareAccelerated)
                return new MeasuredChoice(CpuChoices.AttentionKernelSwitch, "libtorch", new[] { new ChoiceTiming(NarrowHead, null, $"takes heads up to {NarrowHeadAttention.MaxHeadDim} wide with 256-bit vectors") });
            LibTorchRuntime.EnsureLoaded();
            using var scope = torch.NewDisposeScope();
            var gen = new torch.Generator(2);
            var q = torch.randn(new long[] { rows, tokens, heads, headDim }, generator: gen).requires_grad_();      // [B, T, H, hd]
            var k = torch.randn(new long[] { rows, tokens, kvHeads, headDim }, generator: gen).requires_grad_();    // [B, T, KV, hd]
            var v = torch.randn(new long[] { rows, tokens, kvHeads, headDim }, generator: gen).requires_grad_();
            int repeat = heads / kvHeads;
            double Libtorch() => MeasuredChoice.Time(() =>
            {
                using var s = torch.NewDisposeScope();
                var qh = q.transpose(1, 2);                                                                      // [B, H, T, hd]
                var kh = k.transpose(1, 2).repeat_interleave(repeat, 1); var vh = v.transpose(1, 2).repeat_interleave(repeat, 1);
                nn.functional.scaled_dot_product_attention(qh, kh, vh, is_casual: true).transpose(1, 2).sum().backward();
                q.grad = null; k.grad = null; v.grad = null;
            });
            Func<double> Narrow(int bits) => () => MeasuredChoice.Time(() =>
            {
                using var s = torch.NewDisposeScope();
                NarrowHeadAttention.Causal(q, k, v, bits).sum().backward();
                q.grad = null; k.grad = null; v.grad = null;
            });
            var candidates = new List<(string, Func<double>)> { ("libtorch", Libtorch), (NarrowHead, Narrow(256)) };
            if (NarrowHeadAttention.Supports512(headDim)) candidates.Add((NarrowHead512, Narrow(512)));
            return MeasuredChoice.Measure(CpuChoices.AttentionKernelSwitch, candidates, "libtorch");
        });

    /// <summary>The candidates' names, as <see cref="For"/> and <see cref="CpuChoices.Override"/> spell them.</summary>
    public const string NarrowHead = "narrow-head", NarrowHead512 = "narrow-head-512";

    /// <summary>The kernel a decision of <see cref="For"/> names (anything else, a failed measurement included, is libtorch's).</summary>
    public static AttentionKernel Kernel(MeasuredChoice choice) => choice.Chosen switch
    {
        NarrowHead => AttentionKernel.NarrowHead,
        NarrowHead512 => AttentionKernel.NarrowHead512,
        _ => AttentionKernel.Libtorch,
    };
}
