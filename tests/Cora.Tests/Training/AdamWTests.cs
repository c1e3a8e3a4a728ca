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
        foreach (var (fused, single) in Layouts)
        {
            var p = new Parameter(torch.zeros(1003));                 // 125 vectors and a 3-element tail
            var q = new Parameter(torch.zeros(2, 3));
            using var opt = new AdamW(new[] { new AdamW.Group(new[] { q, p }, 0) }, 1e-3) { Fused = fused, SingleBuffer = single };
            Assert.IsTrue(opt.GradientsFinite(), $"fused {fused}, single {single}: no gradient yet");
            q.grad = torch.ones(2, 3);
            foreach (var (at, bad) in new[] { (0, float.NaN), (517, float.PositiveInfinity), (1001, float.NegativeInfinity), (-1, 0f) })
            {
                var g = torch.randn(1003).mul(1e30f);                     // large but finite values
                if (at >= 0) g[at] = bad;
                p.grad = g;
                Assert.AreEqual(at < 0, opt.GradientsFinite(), $"fused {fused}, single {single}: {bad} at {at}");
            }
            q.grad = torch.tensor(new[] { 1f, 2, 3, float.NaN, 5, 6 }).view(2, 3);
            Assert.IsFalse(opt.GradientsFinite(), $"fused {fused}, single {single}: NaN in the second tensor of the buffer");
            Assert.AreEqual(single ? 2 : 0, opt.BufferedParameters, "laid out at the first call that found gradients, not before");
        }

        // A gradient split into several parallel chunks (2^18 elements each) and a tail: a bad value in any chunk is found.
        const int n = (1 << 19) + 37;
        var big = new Parameter(torch.zeros(n));
        using var bigOpt = new AdamW(new[] { new AdamW.Group(new[] { big }, 0) }, 1e-3);
        foreach (var (at, bad) in new[] { (3, float.NaN), ((1 << 18) + 5, float.PositiveInfinity), ((1 << 19) + 30, float.NaN), (n - 1, float.NegativeInfinity), (-1, 0f) })
        {
            var g = torch.randn(n);
            if (at >= 0) g[at] = bad;
            big.grad = g;
            Assert.AreEqual(at < 0, bigOpt.GradientsFinite(), $"{bad} at {at} of {n}");
        }
    }

    /// <summary>(Fused, SingleBuffer): each way the update can run on the CPU.</summary>
    private static readonly (bool fused, bool single)[] Layouts = { (true, false), (false, false), (true, true), (false, true) };

    [TestMethod]
    public void OneBufferPerGroupMakesTheSameUpdatesAsOneParameterAtATime()
    {
        // Two modules and a loose parameter in two groups. The loose one gets no gradient at first (so it stays out of the buffer
        // and unchanged), then one; at step 4 a buffered weight has no gradient (that step updates parameter by parameter, which
        // skips it). Every layout must give the per-parameter libtorch result, through the modules' own parameter objects.
        var results = new List<(Tensor[] weights, Tensor output, Dictionary<string, Tensor> state)>();
        var x = torch.randn(new long[] { 5, 7 }, generator: new torch.Generator(3));
        foreach (var (fused, single) in Layouts)
        {
            torch.manual_seed(5);
            var first = nn.Linear(7, 13); var second = nn.Linear(13, 1);
            var loose = new Parameter(torch.ones(4));
            var decayed = new[] { first.weight!, second.weight!, loose };
            var plain = new[] { first.bias!, second.bias! };
            using var opt = new AdamW(new[] { new AdamW.Group(decayed, 0.1), new AdamW.Group(plain, 0) }, 1e-2) { Fused = fused, SingleBuffer = single };
            for (int step = 0; step < 6; step++)
            {
                opt.ZeroGrad();
                var loss = second.call(nn.functional.gelu(first.call(x))).pow(2).mean();
                if (step >= 2) loss = loss.add(loose.mul(step).sum());
                loss.backward();
                if (step == 4) second.weight!.grad = null;
                Assert.IsTrue(opt.GradientsFinite());
                opt.Step();
                if (step < 2) CollectionAssert.AreEqual(new[] { 1f, 1f, 1f, 1f }, loose.data<float>().ToArray(), $"fused {fused}, single {single}: no gradient, no change");
                // In one buffer: both weights (the loose parameter had no gradient at the first step) and both biases.
                Assert.AreEqual(single ? 4 : 0, opt.BufferedParameters, $"fused {fused}, single {single}");
            }
            using var _ = torch.no_grad();
            results.Add((decayed.Concat(plain).Select(p => p.detach().clone()).ToArray(), second.call(first.call(x)),
                         opt.StateTensors().ToDictionary(e => e.Key, e => e.Value.clone())));
        }
        var (refWeights, refOutput, refState) = results[1];                 // per parameter, libtorch operations
        for (int k = 0; k < results.Count; k++)
        {
            string what = $"fused {Layouts[k].fused}, single {Layouts[k].single}";
            for (int i = 0; i < refWeights.Length; i++)
                TensorAssert.Close(refWeights[i], results[k].weights[i], 1e-6 * (1 + refWeights[i].abs().max().item<float>()), $"{what}: parameter {i}");
            TensorAssert.Close(refOutput, results[k].output, 1e-5, $"{what}: the modules compute with the updated weights");
            foreach (var (key, m) in refState) TensorAssert.Close(m, results[k].state[key], 1e-6 * (1 + m.abs().max().item<float>()), $"{what}: moment {key}");
        }
    }

    [TestMethod]
    public void OneBufferIsTheDefaultWhereTheFusedPassDoesNotApply()
    {
        foreach (var (dtype, fused, expected) in new[] { (ScalarType.Float32, true, 0), (ScalarType.Float64, true, 2), (ScalarType.Float32, false, 2) })
        {
            var ps = new[] { new Parameter(torch.ones(3, dtype: dtype)), new Parameter(torch.ones(2, 2, dtype: dtype)) };
            using var opt = new AdamW(new[] { new AdamW.Group(ps, 0.1) }, 1e-2) { Fused = fused };
            foreach (var p in ps) p.grad = torch.ones_like(p);
            opt.Step();
            Assert.AreEqual(expected, opt.BufferedParameters, $"{dtype}, fused {fused}");
            Assert.AreEqual(1 - 1e-2 * 0.1 - 1e-2, ps[1].to(ScalarType.Float64).mean().item<double>(), 1e-6, $"{dtype}, fused {fused}: one step of size lr");
        }
    }

    [TestMethod]
    public void OneBufferStateResumesIntoEitherLayout()
    {
        var gen = new torch.Generator(17);
        var shapes = new[] { new long[] { 3, 5 }, new long[] { 5 }, new long[] { 2, 2, 2 } };
        var grads = Enumerable.Range(0, 5).Select(_ => shapes.Select(s => torch.randn(s, generator: gen)).ToArray()).ToList();
        var start = shapes.Select(s => torch.randn(s, generator: gen)).ToArray();
        List<Parameter> Fresh() => start.Select(t => new Parameter(t.clone())).ToList();
        void Run(AdamW opt, List<Parameter> ps, int from, int to)
        {
            for (int s = from; s < to; s++) { for (int i = 0; i < ps.Count; i++) ps[i].grad = grads[s][i].clone(); opt.Step(); }
        }
        // Five steps in one buffer without a break...
        var whole = Fresh();
        using var all = new AdamW(new[] { new AdamW.Group(whole, 0.01) }, 1e-2) { Fused = false, SingleBuffer = true };
        Run(all, whole, 0, 5);
        // ...equal three steps in one buffer, the state saved, and two more resumed into either layout.
        var before = Fresh();
        using var first = new AdamW(new[] { new AdamW.Group(before, 0.01) }, 1e-2) { Fused = false, SingleBuffer = true };
        Run(first, before, 0, 3);
        var saved = first.StateTensors().ToDictionary(e => e.Key, e => e.Value.clone());
        foreach (bool single in new[] { true, false })
        {
            var resumed = before.Select(p => new Parameter(p.detach().clone())).ToList();
            using var opt = new AdamW(new[] { new AdamW.Group(resumed, 0.01) }, 1e-2) { Fused = false, SingleBuffer = single };
            opt.LoadState(k => saved[k].clone(), first.Steps);
            Run(opt, resumed, 3, 5);
            Assert.AreEqual(single ? 3 : 0, opt.BufferedParameters);
            for (int i = 0; i < whole.Count; i++)
                TensorAssert.Close(whole[i], resumed[i], 1e-6, $"resumed into single {single}: parameter {i}");
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
