using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Cora.Tests;

/// <summary><see cref="RotaryKernel"/> computes <see cref="RotaryEmbedding.Apply"/> (forward and the input's gradient) on token-major
/// heads and refuses what it cannot take.</summary>
[TestClass]
public class RotaryKernelTests
{
    [TestMethod]
    [DataRow(2, 9, 4, 8)]      // stories260K's heads
    [DataRow(1, 5, 3, 12)]     // half 6: one vector and a scalar tail
    [DataRow(2, 70, 2, 32)]    // several parallel chunks of positions
    [DataRow(1, 3, 2, 2)]
    public void MatchesRotaryEmbeddingForwardAndBackward(int b, int t, int heads, int hd)
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator((ulong)(b * 1000 + t * 10 + hd));
        var x = torch.randn(new long[] { b, t, heads, hd }, generator: g).requires_grad_();
        var angles = torch.randn(new long[] { b, t, hd }, generator: g).mul(3);
        var cos = angles.cos(); var sin = angles.sin();                       // any tables: the kernel must not assume rotary's
        var up = torch.randn(new long[] { b, t, heads, hd }, generator: g);

        var mine = RotaryKernel.Apply(x, cos, sin);
        mine.mul(up).sum().backward();
        var dx = x.grad!.clone();
        x.grad = null;
        var reference = RotaryEmbedding.Apply(x, cos.unsqueeze(2), sin.unsqueeze(2));
        reference.mul(up).sum().backward();

        Assert.IsTrue(mine.sub(reference).abs().max().item<float>() <= 1e-6f * Math.Max(1f, reference.abs().max().item<float>()), "output");
        Assert.IsTrue(dx.sub(x.grad!).abs().max().item<float>() <= 1e-6f * Math.Max(1f, x.grad!.abs().max().item<float>()), "dx");
        Assert.IsTrue(dx.abs().max().item<float>() > 1e-2f, "the gradient must not vanish");
        using (torch.no_grad())
            Assert.AreEqual(0f, RotaryKernel.Apply(x, cos, sin).sub(mine.detach()).abs().max().item<float>(), "without autograd the same numbers");
    }

    [TestMethod]
    public void RefusesWhatItCannotTake()
    {
        var cos = torch.ones(1, 4, 8); var sin = torch.zeros(1, 4, 8);
        Assert.IsTrue(RotaryKernel.Supports(torch.zeros(1, 4, 2, 8), cos, sin));
        Assert.IsFalse(RotaryKernel.Supports(torch.zeros(1, 4, 2, 7), torch.ones(1, 4, 7), torch.zeros(1, 4, 7)), "an odd head width has no halves");
        Assert.IsFalse(RotaryKernel.Supports(torch.zeros(1, 4, 2, 8, dtype: ScalarType.BFloat16), cos, sin), "bf16 goes to libtorch");
        Assert.IsFalse(RotaryKernel.Supports(torch.zeros(1, 5, 2, 8), cos, sin), "tables for another length");
        var e = Assert.ThrowsExactly<ArgumentException>(() => RotaryKernel.Apply(torch.zeros(1, 5, 2, 8), cos, sin));
        StringAssert.Contains(e.Message, "[1, 5, 2, 8]");
    }
}
