using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Tests;

/// <summary>
/// The query generator's matrix products in bf16 (<see cref="QueryGenerator.MatmulDtype"/>, <see cref="CoraModel.GeneratorDtype"/>):
/// values and their resolution, closeness to fp32 in the output and the gradients, fp32 weights throughout, and scoring on a slice.
/// </summary>
[TestClass]
public class GeneratorBf16Tests
{
    [TestMethod]
    public void GeneratorDtypeValuesAreCheckedAndResolved()
    {
        foreach (var ok in new[] { "auto", "bf16", "BFloat16", "fp32", " float32 ", "", null })
            Assert.IsNull(CoraDevice.GeneratorDtypeError(ok), ok ?? "null");
        foreach (var bad in new[] { "fp16", "int8", "fp8" })
            StringAssert.Contains(CoraDevice.GeneratorDtypeError(bad), $"unknown generator dtype '{bad}'; use auto, bf16 or fp32");
        Assert.ThrowsExactly<ArgumentException>(() => CoraDevice.ResolveGeneratorDtype("fp16", torch.CPU));

        Assert.AreEqual(ScalarType.BFloat16, CoraDevice.ResolveGeneratorDtype("bf16", torch.CPU));
        Assert.AreEqual(ScalarType.Float32, CoraDevice.ResolveGeneratorDtype("fp32", torch.CPU));
        var measured = CpuChoices.GeneratorDtype(CoraDefaults.GeneratorHidden, CoraDefaults.GeneratorFeedForward);
        Assert.AreEqual(measured.Chosen == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32, CoraDevice.ResolveGeneratorDtype("auto", torch.CPU), "auto = the measured faster dtype");
        Assert.AreEqual(ScalarType.Float32, CoraDevice.ResolveGeneratorDtype("auto", new Device(DeviceType.CUDA, 0)), "auto keeps fp32 on a GPU");
        Assert.AreEqual(ScalarType.BFloat16, CoraDevice.ResolveGeneratorDtype("bf16", new Device(DeviceType.CUDA, 0)));

        Assert.IsTrue(CoraDevice.CpuFlagsHaveBf16("flags\t\t: fpu vme avx512f avx512_bf16 avx512_vnni"));
        Assert.IsTrue(CoraDevice.CpuFlagsHaveBf16("flags\t: fpu amx_bf16 amx_tile"));
        Assert.IsFalse(CoraDevice.CpuFlagsHaveBf16("flags\t\t: fpu vme avx2 avx512f avx512_vnni"));
        Assert.IsFalse(CoraDevice.CpuFlagsHaveBf16("flags\t\t: avx512_bf16x"), "whole flags only");
        Assert.IsFalse(CoraDevice.CpuFlagsHaveBf16(null));
        if (OperatingSystem.IsLinux() && File.Exists("/proc/cpuinfo"))
            Assert.AreEqual(File.ReadLines("/proc/cpuinfo").Any(l => l.StartsWith("flags") && (l.Contains(" avx512_bf16") || l.Contains(" amx_bf16"))), CoraDevice.CpuHasNativeBf16);
    }

    private static (Tensor a, Dictionary<string, Tensor> grads) Run(QueryGenerator g, Tensor cf, Tensor weight)
    {
        foreach (var p in g.parameters()) p.grad = null;
        var a = g.Forward(cf);                                                   // [B, d, r]
        a.mul(weight).sum().backward();
        return (a.detach(), g.named_parameters().Where(p => p.parameter.grad is not null).ToDictionary(p => p.name, p => p.parameter.grad!.clone()));
    }

    private static double Cosine(Tensor x, Tensor y) =>
        x.flatten().to(ScalarType.Float64).dot(y.flatten().to(ScalarType.Float64)).item<double>() / (x.norm().item<float>() * (double)y.norm().item<float>());

    [TestMethod]
    public void TheGeneratorInBf16StaysCloseToFp32AndTrainsItsFp32Weights()
    {
        var o = QueryGeneratorOptions.Compact with { Dropout = 0 };
        using var g = new QueryGenerator(o, cfWidth: 32, dModel: 64, rank: 8, seed: 5);
        g.train();
        var gen = new torch.Generator(11);
        var cf = torch.randn(new long[] { 12, 32 }, generator: gen);
        var weight = torch.randn(new long[] { 12, 64, 8 }, generator: gen);
        var (a32, g32) = Run(g, cf, weight);

        g.MatmulDtype = ScalarType.BFloat16;
        var (a16, g16) = Run(g, cf, weight);
        Assert.AreEqual(ScalarType.Float32, a16.dtype, "A comes back in float32");
        Assert.IsTrue(g.parameters().All(p => p.dtype == ScalarType.Float32), "the weights stay float32");
        Assert.IsTrue(g16.Values.All(t => t.dtype == ScalarType.Float32), "and so do their gradients");
        CollectionAssert.AreEquivalent(g32.Keys.ToArray(), g16.Keys.ToArray(), "every parameter that gets a gradient in fp32 gets one in bf16");

        double maxDiff = a32.sub(a16).abs().max().item<float>();
        Assert.IsTrue(maxDiff > 0, "the products really ran in bf16");
        for (int i = 0; i < 12; i++)
        {
            double c = Cosine(a32[i], a16[i]);
            Assert.IsTrue(c > 0.999, $"sample {i}: cosine of A in bf16 and fp32 {c}");
        }
        // The reference is float64: a tensor whose float64 gradient is zero up to float64 rounding has an exact gradient of zero
        // (the self-attention's key bias: softmax ignores a shift shared by every key; the cross-attention's query and key: softmax
        // over one CF token is 1), and in fp32 and bf16 it holds rounding noise whose sign depends on the CPU. Those are checked
        // to stay at noise level; every other gradient must be close in bf16, relative to its own size plus a small share of the
        // largest gradient (a product rounded to bf16's 8 bits carries ~2^-8 of the terms it sums).
        g.MatmulDtype = null;
        g.to(ScalarType.Float64);
        var (_, g64) = Run(g, cf.to(ScalarType.Float64), weight.to(ScalarType.Float64));
        g.to(ScalarType.Float32);
        double Norm(Tensor t) => t.to(ScalarType.Float64).norm().item<double>();
        double largest = g64.Values.Max(Norm);
        Assert.IsTrue(largest > 0, "the generator gets a gradient");
        int compared = 0;
        foreach (var (name, exact) in g64)
        {
            double size = Norm(exact);
            if (size <= 1e-9 * largest)
            {
                Assert.IsTrue(Norm(g32[name]) <= 1e-3 * largest && Norm(g16[name]) <= 1e-2 * largest,
                    $"{name}: zero in exact arithmetic, but |grad| fp32 {Norm(g32[name]):E2}, bf16 {Norm(g16[name]):E2} against the largest {largest:E2}");
                continue;
            }
            compared++;
            double err16 = Norm(g16[name].to(ScalarType.Float64).sub(exact)), err32 = Norm(g32[name].to(ScalarType.Float64).sub(exact));
            Assert.IsTrue(err32 <= 1e-3 * size + 1e-5 * largest, $"{name}: fp32 gradient off the fp64 one by {err32:E2} (|grad| {size:E2})");
            Assert.IsTrue(err16 <= 0.1 * size + 0.02 * largest, $"{name}: bf16 gradient off the fp64 one by {err16:E2} (|grad| {size:E2}, largest {largest:E2})");
        }
        Assert.IsTrue(compared >= g64.Count / 2, $"only {compared} of {g64.Count} gradients are non-zero");
        Console.WriteLine($"max |A_bf16 - A_fp32| {maxDiff:E2} (|A| entries ~{a32.abs().mean().item<float>():E2})");

        g.MatmulDtype = null;
        var (again, _) = Run(g, cf, weight);
        Assert.IsTrue(again.eq(a32).all().item<bool>(), "back to fp32: the same A bit for bit");
    }

    [TestMethod]
    public void CoraModelGeneratorDtypeFollowsTheSettingAndTheDevice()
    {
        using var m = Synthetic.Model(CoraMethod.Cora);
        var g = m.Generator!;
        Assert.AreEqual(CoraDefaults.GeneratorDtype, m.GeneratorDtype);
        var o = g.Options;
        Assert.AreEqual(CpuChoices.GeneratorDtype(o.Hidden, o.FeedForward).Chosen == "bf16" ? ScalarType.BFloat16 : (ScalarType?)null, g.MatmulDtype, "auto: measured on this CPU for this generator's width");
        m.GeneratorDtype = "bf16";
        Assert.AreEqual(ScalarType.BFloat16, g.MatmulDtype);
        Assert.IsTrue(g.layers.All(l => l.MatmulDtype == ScalarType.BFloat16 && l.self_attention.MatmulDtype == ScalarType.BFloat16 && l.cross_attention.MatmulDtype == ScalarType.BFloat16), "every layer");
        m.To(torch.CPU, ScalarType.Float64, ScalarType.Float64);
        Assert.IsNull(g.MatmulDtype, "fp64 weights compute in fp64");
        m.To(torch.CPU, ScalarType.Float32, ScalarType.Float32);
        Assert.AreEqual(ScalarType.BFloat16, g.MatmulDtype, "the setting is kept across moves");
        m.GeneratorDtype = "fp32";
        Assert.IsNull(g.MatmulDtype);
        var e = Assert.ThrowsExactly<ArgumentException>(() => m.GeneratorDtype = "fp8");
        StringAssert.Contains(e.Message, "Unknown generator dtype 'fp8'");
        Assert.AreEqual("fp32", m.GeneratorDtype, "a refused value changes nothing");
        using var mf = Synthetic.Model(CoraMethod.Mf);
        mf.GeneratorDtype = "bf16";   // no generator: accepted, nothing to apply
        Assert.IsNull(mf.Generator);
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    public void Bf16GeneratorScoresAgreeWithFp32OnASlice()
    {
        var rows = Slice.Valid.Take(600).ToList();
        using var m = new CoraModel(Slice.SmallOptions(CoraMethod.Cora), LanguageModel.Load(Slice.LlmPath), Slice.SmallMf(), Slice.Items);
        DeviceMoveTests.RandomiseP(m, 0.05);
        m.GeneratorDtype = "fp32";
        var a = m.Score(rows, batchSize: 16);
        m.GeneratorDtype = "bf16";
        var b = m.Score(rows, batchSize: 16);
        var labels = rows.Select(r => r.Label).ToArray();
        double aucA = Metrics.Auc(a, labels), aucB = Metrics.Auc(b, labels);
        double maxDiff = a.Zip(b).Max(x => Math.Abs(x.First - x.Second));
        Console.WriteLine($"AUC fp32 {aucA:F4} vs bf16 generator {aucB:F4}; max |logit diff| {maxDiff:F4}");
        Assert.IsTrue(maxDiff > 0, "the bf16 products changed something");
        DeviceMoveTests.AssertBf16Close(a, b);
        Assert.IsTrue(Math.Abs(aucA - aucB) <= 0.005, $"AUC fp32 {aucA:F4} vs bf16 generator {aucB:F4}");
    }

    [TestMethod]
    public void TheMlNetOptionReachesTheModelAndIsChecked()
    {
        var ml = new MLContext(seed: 1);
        var o = new CoraTrainer.Options { Method = CoraMethod.Cora, LlmPath = Synthetic.LlmPath, ItemTitles = Synthetic.Items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value),
            Generator = QueryGeneratorOptions.Compact, GeneratorDtype = "bf16" };
        o.MaxSteps = 1; o.ValidateEvery = 1000;
        var t = ml.Recommendation().Trainers.Cora(o).Fit(ml.Data.LoadFromEnumerable(CoraInput.From(Synthetic.Train.Take(64))));
        Assert.AreEqual("bf16", t.Model.GeneratorDtype);
        Assert.AreEqual(ScalarType.BFloat16, t.Model.Generator!.MatmulDtype);
        o.GeneratorDtype = "half";
        var e = Assert.ThrowsExactly<ArgumentException>(() => ml.Recommendation().Trainers.Cora(o));
        StringAssert.Contains(e.Message, "GeneratorDtype: unknown generator dtype 'half'");

        // Loading: the choice is a load argument (not stored in the file); the default is auto.
        using var dir = TestPaths.Temp();
        ml.Model.Save(t, null, dir["m.zip"]);
        var fp32 = CoraTransformer.Find(new MLContext(seed: 1).Model.LoadCora(dir["m.zip"], out _, generatorDtype: "fp32"));
        Assert.AreEqual("fp32", fp32.Model.GeneratorDtype);
        Assert.IsNull(fp32.Model.Generator!.MatmulDtype);
        var auto = CoraTransformer.Find(new MLContext(seed: 1).Model.LoadCora(dir["m.zip"], out _));
        Assert.AreEqual(CoraDefaults.GeneratorDtype, auto.Model.GeneratorDtype);
        var bad = Assert.ThrowsExactly<ArgumentException>(() => new MLContext(seed: 1).Model.LoadCora(dir["m.zip"], out _, generatorDtype: "int8"));
        StringAssert.Contains(bad.Message, "unknown generator dtype 'int8'");
        fp32.Model.Dispose(); auto.Model.Dispose();
    }
}
