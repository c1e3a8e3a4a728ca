using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;

namespace Cora.Tests;

/// <summary>
/// <see cref="FastDropout"/> has dropout's distribution (keep with probability 1 - p, scaled by 1 / (1 - p), independently per
/// element), is reproducible under <c>torch.manual_seed</c>, differs between calls, and passes the same mask to the gradient.
/// </summary>
[TestClass]
public class FastDropoutTests
{
    [TestMethod]
    public void KeepsEachElementWithProbabilityOneMinusPScaled()
    {
        foreach (double p in new[] { 0.05, 0.5 })
        {
            torch.manual_seed(7);
            var y = FastDropout.Apply(torch.ones(40, 250, 64), p);                           // 640,000 elements
            var kept = y.gt(0);
            Assert.AreEqual(0f, y.masked_select(kept).sub((float)(1 / (1 - p))).abs().max().item<float>(), 1e-6f, "kept values are scaled by 1 / (1 - p)");
            Assert.AreEqual(0f, y.masked_select(kept.logical_not()).abs().sum().item<float>(), "dropped values are zero");
            double n = kept.numel(), sd = Math.Sqrt(p * (1 - p) / n);
            double rate = kept.to(ScalarType.Float64).mean().item<double>();
            Assert.AreEqual(1 - p, rate, 5 * sd, $"p {p}: keep rate");
            // Independence: neighbours (along the last dimension and across rows) are both kept at the product rate,
            // and every position of the last dimension keeps at the same rate.
            var k = kept.to(ScalarType.Float64);
            double pairs = k.narrow(2, 0, 63).mul(k.narrow(2, 1, 63)).mean().item<double>();
            Assert.AreEqual((1 - p) * (1 - p), pairs, 6 * Math.Sqrt((1 - p) * (1 - p) * (1 - (1 - p) * (1 - p)) / n), $"p {p}: adjacent pairs");
            double rows = k.narrow(0, 0, 39).mul(k.narrow(0, 1, 39)).mean().item<double>();
            Assert.AreEqual((1 - p) * (1 - p), rows, 6 * Math.Sqrt((1 - p) * (1 - p) * (1 - (1 - p) * (1 - p)) / n), $"p {p}: pairs across rows");
            var perColumn = k.mean(new long[] { 0, 1 });                                      // [64]
            double colSd = Math.Sqrt(p * (1 - p) / (40 * 250));
            Assert.IsTrue(perColumn.sub(1 - p).abs().max().item<double>() < 5 * colSd, $"p {p}: every column keeps at the same rate");
        }
    }

    [TestMethod]
    public void ReproducibleUnderTheSeedAndFreshOnEachCall()
    {
        var x = torch.randn(3, 37, 64);
        torch.manual_seed(42);
        var a1 = FastDropout.Apply(x, 0.1); var a2 = FastDropout.Apply(x, 0.1);
        torch.manual_seed(42);
        var b1 = FastDropout.Apply(x, 0.1);
        Assert.AreEqual(0f, a1.sub(b1).abs().max().item<float>(), "the same seed gives the same mask");
        Assert.IsTrue(a1.gt(0).ne(a2.gt(0)).any().item<bool>(), "the next call draws a new mask");
        Assert.AreEqual(0f, a1.masked_select(a1.ne(0)).sub(x.masked_select(a1.ne(0)).div(0.9f)).abs().max().item<float>(), 1e-6f, "kept elements are the input, scaled");
    }

    [TestMethod]
    public void TheGradientIsTheMask()
    {
        var x = torch.randn(2, 9, 16).requires_grad_();
        torch.manual_seed(3);
        var y = FastDropout.Apply(x, 0.25);
        y.sum().backward();
        var mask = y.detach().div(x.detach());
        Assert.IsTrue(x.grad!.allclose(mask, rtol: 1e-5, atol: 1e-6), "dy/dx = mask");
        Assert.AreEqual(0f, FastDropout.Apply(x, 0).sub(x).abs().max().item<float>(), "p = 0 is the identity");
    }
}
