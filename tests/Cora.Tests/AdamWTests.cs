using Microsoft.ML.Cora.Training;
using TorchSharp;
using Parameter = TorchSharp.Modules.Parameter;
using AdamW = Microsoft.ML.Cora.Training.AdamW;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary>Cora's AdamW: the fused CPU pass and the libtorch-operations path make the same update, and both match AdamW by hand.</summary>
[TestClass]
public class AdamWTests
{
    [TestMethod]
    public void OneStepMatchesAdamWByHand()
    {
        foreach (bool fused in new[] { true, false })
        {
            var p = new Parameter(torch.tensor(new[] { 1f, -2f }));
            p.grad = torch.tensor(new[] { 0.5f, 0f });
            using var opt = new AdamW(new[] { new AdamW.Group(new[] { p }, 0.01) }, 0.1) { Fused = fused };
            opt.Step();
            // m = 0.1 · 0.5 = 0.05, v = 0.001 · 0.25; bias-corrected: m̂ = 0.5, sqrt(v̂) = 0.5; p = 1 · (1 - 0.1 · 0.01) - 0.1 · 0.5 / 0.5
            var got = p.data<float>().ToArray();
            Assert.AreEqual(0.899f, got[0], 1e-6f, $"fused {fused}");
            Assert.AreEqual(-2f * (1 - 0.001f), got[1], 1e-6f, $"fused {fused}: a zero gradient leaves only the decay");
            Assert.AreEqual(1, opt.Steps);
        }
    }

    [TestMethod]
    public void FusedAndLibTorchUpdatesAgree()
    {
        var gen = new torch.Generator(11);
        // Sizes: shorter than a vector, not a multiple of 8, and more than one parallel chunk.
        var shapes = new[] { new long[] { 5 }, new long[] { 13, 7 }, new long[] { 200_003 } };
        var a = shapes.Select(s => new Parameter(torch.randn(s, generator: gen))).ToList();
        var b = a.Select(p => new Parameter(p.detach().clone())).ToList();
        using var fused = new AdamW(new[] { new AdamW.Group(a.Take(2).ToList(), 0.05), new AdamW.Group(a.Skip(2).ToList(), 0) }, 3e-3) { Fused = true };
        using var plain = new AdamW(new[] { new AdamW.Group(b.Take(2).ToList(), 0.05), new AdamW.Group(b.Skip(2).ToList(), 0) }, 3e-3) { Fused = false };
        for (int step = 0; step < 6; step++)
        {
            for (int i = 0; i < a.Count; i++)
            {
                var g = torch.randn(a[i].shape, generator: gen).mul(step + 1);
                a[i].grad = g; b[i].grad = g.clone();
            }
            fused.Step(); plain.Step();
            fused.LearningRate = plain.LearningRate = 3e-3 / (step + 2);     // a schedule reaches both
        }
        for (int i = 0; i < a.Count; i++)
        {
            double diff = a[i].sub(b[i]).abs().max().item<float>(), scale = b[i].abs().max().item<float>();
            Assert.IsTrue(diff <= 1e-6 * scale, $"parameter {i}: differs by {diff:E2} (largest {scale:E2})");
        }
        var fm = fused.StateTensors(); var pm = plain.StateTensors();
        foreach (var key in pm.Keys)
        {
            double diff = fm[key].sub(pm[key]).abs().max().item<float>(), scale = pm[key].abs().max().item<float>();
            Assert.IsTrue(diff <= 1e-6 * scale, $"moment {key}: differs by {diff:E2} (largest {scale:E2})");
        }
    }

    [TestMethod]
    public void GradientsFiniteFindsANaNOrInfinityAnywhere()
    {
        foreach (bool fused in new[] { true, false })
        {
            var p = new Parameter(torch.zeros(1003));                 // 125 vectors and a 3-element tail
            using var opt = new AdamW(new[] { new AdamW.Group(new[] { p }, 0) }, 1e-3) { Fused = fused };
            Assert.IsTrue(opt.GradientsFinite(), $"fused {fused}: no gradient yet");
            foreach (var (at, bad) in new[] { (0, float.NaN), (517, float.PositiveInfinity), (1001, float.NegativeInfinity), (-1, 0f) })
            {
                var g = torch.randn(1003).mul(1e30f);                     // large but finite values
                if (at >= 0) g[at] = bad;
                p.grad = g;
                Assert.AreEqual(at < 0, opt.GradientsFinite(), $"fused {fused}: {bad} at {at}");
            }
        }
    }

    [TestMethod]
    public void ZeroGradReleasesGradientsAndAccumulationStillAddsUp()
    {
        var p = new Parameter(torch.ones(4));
        using var opt = new AdamW(new[] { new AdamW.Group(new[] { p }, 0) }, 1e-3);
        p.mul(3).sum().backward();
        opt.ZeroGrad();
        Assert.IsNull(p.grad, "released, not zeroed");
        p.mul(2).sum().backward();
        p.mul(5).sum().backward();                                     // gradient accumulation over two backward calls
        CollectionAssert.AreEqual(new[] { 7f, 7f, 7f, 7f }, p.grad!.data<float>().ToArray());
    }
}
