using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Cora.Tests;

/// <summary><see cref="RmsNormKernel"/> computes libtorch's RMS norm (forward and the input's gradient) and refuses what it cannot take.</summary>
[TestClass]
public class RmsNormKernelTests
{
    [TestMethod]
    [DataRow(2, 7, 64)]      // stories260K's width
    [DataRow(3, 5, 13)]      // a width that is not a multiple of the vector
    [DataRow(1, 1, 8)]
    [DataRow(2, 130, 16)]    // several parallel chunks of rows
    public void MatchesTheLibtorchNormForwardAndBackward(int b, int t, int d)
    {
        using var scope = torch.NewDisposeScope();
        var g = new torch.Generator((ulong)(b * 100 + t * 10 + d));
        var x = torch.randn(new long[] { b, t, d }, generator: g).mul(3).requires_grad_();
        var w = torch.randn(new long[] { d }, generator: g);
        var up = torch.randn(new long[] { b, t, d }, generator: g);
        const double eps = 1e-5;

        var mine = RmsNormKernel.Apply(x, w, eps);
        mine.mul(up).sum().backward();
        var dx = x.grad!.clone();
        x.grad = null;
        var reference = x.mul(torch.rsqrt(x.mul(x).mean(new long[] { -1 }, keepdim: true).add(eps))).mul(w);
        reference.mul(up).sum().backward();

        Assert.IsTrue(mine.sub(reference).abs().max().item<float>() <= 1e-5f * Math.Max(1f, reference.abs().max().item<float>()), "output");
        Assert.IsTrue(dx.sub(x.grad!).abs().max().item<float>() <= 1e-5f * Math.Max(1f, x.grad!.abs().max().item<float>()), "dx");
        Assert.IsTrue(dx.abs().max().item<float>() > 1e-3f, "the gradient must not vanish");
        using (torch.no_grad())
            Assert.AreEqual(0f, RmsNormKernel.Apply(x, w, eps).sub(mine.detach()).abs().max().item<float>(), "without autograd the same numbers");
        var strided = x.detach().transpose(0, 1);                                                       // [t, b, d], not contiguous
        Assert.IsTrue(RmsNormKernel.Apply(strided, w, eps).sub(RmsNormKernel.Apply(strided.contiguous(), w, eps)).abs().max().item<float>() == 0f, "strided input");
    }

    [TestMethod]
    public void RefusesWhatItCannotTake()
    {
        Assert.IsFalse(RmsNormKernel.Supports(torch.zeros(2, 8, dtype: ScalarType.BFloat16), torch.ones(8)), "bf16 goes to libtorch");
        Assert.IsFalse(RmsNormKernel.Supports(torch.zeros(2, 8), torch.ones(7)), "the weight must match the last dimension");
        Assert.IsFalse(RmsNormKernel.Supports(torch.zeros(2, 8), torch.ones(8).requires_grad_()), "a trained weight needs its own gradient");
        Assert.IsTrue(RmsNormKernel.Supports(torch.zeros(2, 8), torch.ones(8)));
        var e = Assert.ThrowsExactly<ArgumentException>(() => RmsNormKernel.Apply(torch.zeros(2, 8), torch.ones(7), 1e-5));
        StringAssert.Contains(e.Message, "[7]");
    }
}
