using Microsoft.ML.Cora.Runtime;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora.Llm.Kernels;
using Microsoft.ML.Cora.Methods;

namespace Cora.Tests;

/// <summary><see cref="MeasuredChoice"/> and <see cref="CpuChoices"/>: the faster candidate wins, failures fall back cleanly.</summary>
[TestClass]
public class MeasuredChoiceTests
{
    private static Func<double> Fixed(params double[] times)
    {
        int i = 0;
        return () => times[Math.Min(i++, times.Length - 1)];
    }

    [TestMethod]
    public void AnotherCandidateIsChosenOnlyWhenItsFastestRoundBeatsTheDefaultByTheMargin()
    {
        // warm-up first (ignored), then the rounds: a slow outlier (other work on the machine) does not count.
        var c = MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("a", Fixed(100, 3, 3, 3, 3, 3)), ("b", Fixed(1, 2, 2, 50, 2, 2)) }, "a");
        Assert.AreEqual("b", c.Chosen);
        Assert.AreEqual(3.0, c.Timings[0].Milliseconds);
        Assert.AreEqual(2.0, c.Timings[1].Milliseconds);
        Assert.AreEqual("b (a 3.00 ms, b 2.00 ms)", c.ToString());
        var again = MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("a", Fixed(1, 2, 2, 2, 2, 2)), ("b", Fixed(9, 4, 4, 4, 4, 4)) }, "b");
        Assert.AreEqual("a", again.Chosen);
        var tie = MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("a", Fixed(2)), ("b", Fixed(2)) }, "b");
        Assert.AreEqual("a", tie.Chosen, "a tie keeps the default (the first listed)");
        Assert.AreEqual("a", MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("a", Fixed(10)), ("b", Fixed(9.5)) }, "a").Chosen, "5% faster is within the margin");
        Assert.AreEqual("b", MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("a", Fixed(10)), ("b", Fixed(8.9)) }, "a").Chosen, "11% faster is beyond it");
        Assert.AreEqual("c", MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("a", Fixed(10)), ("b", Fixed(8)), ("c", Fixed(5)) }, "a").Chosen, "the fastest beyond the margin");
    }

    [TestMethod]
    public void AFailingOrUnusableCandidateIsLeftOutAndNoneFallsBack()
    {
        int calls = 0;
        var c = MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("fast", () => { calls++; throw new InvalidOperationException("no kernel\nmore"); }), ("slow", Fixed(5)) }, "fast");
        Assert.AreEqual("slow", c.Chosen, "the failing candidate cannot win");
        Assert.AreEqual(1, calls, "a candidate that failed is not run again");
        Assert.AreEqual("no kernel", c.Timings[0].Error);
        Assert.IsNull(c.Timings[0].Milliseconds);
        StringAssert.Contains(c.ToString(), "fast failed: no kernel");
        var nan = MeasuredChoice.Measure("x", new (string, Func<double>)[] { ("a", Fixed(double.NaN)), ("b", Fixed(0)) }, "fallback");
        Assert.AreEqual("fallback", nan.Chosen, "no usable time: the fallback");
        Assert.IsTrue(nan.Timings.All(t => t.Error is not null));
    }

    [TestMethod]
    public void OverridesFixTheDecisionsTheModelUses()
    {
        try
        {
            foreach (var forced in new[] { "bf16", "fp32" })
            {
                CpuChoices.Override = s => s == CpuChoices.GeneratorDtypeSwitch ? forced : null;
                Assert.AreEqual(forced == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32, CoraDevice.ResolveGeneratorDtype("auto", torch.CPU));
                Assert.AreEqual(ScalarType.Float32, CoraDevice.ResolveGeneratorDtype("auto", new Device(DeviceType.CUDA, 0)), "a GPU keeps fp32 whatever the CPU measured");
                using var m = Synthetic.Model(CoraMethod.Cora);
                Assert.AreEqual(forced == "bf16" ? ScalarType.BFloat16 : (ScalarType?)null, m.Generator!.MatmulDtype);
            }
            foreach (var (forced, kernel) in new[] { ("narrow-head", AttentionKernel.NarrowHead), ("narrow-head-512", AttentionKernel.NarrowHead512),
                         ("libtorch", AttentionKernel.Libtorch), ("no-such-kernel", AttentionKernel.Libtorch) })
            {
                CpuChoices.Override = s => s == CpuChoices.AttentionKernelSwitch ? forced : null;
                using var m = Synthetic.Model(CoraMethod.Cora);
                Assert.AreEqual(kernel, m.Kernels(ComputePlan.Fast).Attention, forced);
                Assert.AreEqual(LlmKernels.None, m.Kernels(ComputePlan.Plain), "the plain plan takes none of Cora's kernels");
            }
        }
        finally { CpuChoices.Override = null; }
    }

    [TestMethod]
    public void RealMeasurementsTimeBothCandidatesOnceAndAgreeWithTheModel()
    {
        var gen = CpuChoices.GeneratorDtype(64, 128, rows: 16);
        CollectionAssert.AreEqual(new[] { "fp32", "bf16" }, gen.Timings.Select(t => t.Candidate).ToArray());
        Assert.IsTrue(gen.Timings.All(t => t.Milliseconds > 0), gen.ToString());
        Assert.AreSame(gen, CpuChoices.GeneratorDtype(64, 128, rows: 16), "measured once per process and shape");
        var attn = AttentionKernelChoice.For(4, 2, 8, rows: 2, tokens: 64);
        var expected = NarrowHeadAttention.Supports512(8) ? new[] { "libtorch", "narrow-head", "narrow-head-512" } : new[] { "libtorch", "narrow-head" };
        CollectionAssert.AreEqual(expected, attn.Timings.Select(t => t.Candidate).ToArray(), "512-bit vectors are a candidate exactly where the CPU has them");
        Assert.IsTrue(attn.Timings.All(t => t.Milliseconds > 0), attn.ToString());
        var streams = CpuChoices.ScoringStreams(48);
        if (Math.Min(Environment.ProcessorCount, CoraDevice.Threads) > 1)
        {
            CollectionAssert.AreEqual(new[] { "1", Math.Min(CpuChoices.MaxScoringStreams, Math.Min(Environment.ProcessorCount, CoraDevice.Threads)).ToString() },
                streams.Timings.Select(t => t.Candidate).ToArray());
            Assert.IsTrue(streams.Timings.All(t => t.Milliseconds > 0), streams.ToString());
        }
        else Assert.AreEqual("1", streams.Chosen, "one core: one stream, unmeasured");
        var wide = AttentionKernelChoice.For(2, 2, 64);
        Assert.AreEqual("libtorch", wide.Chosen, "heads wider than the kernel takes: libtorch, unmeasured");
        Assert.IsTrue(CpuChoices.Made.Any(c => c.Switch == CpuChoices.AttentionKernelSwitch));
        // Under inference mode (scoring) a decision still measures with autograd.
        using (torch.inference_mode()) Assert.IsTrue(CpuChoices.GeneratorDtype(32, 64, rows: 8).Timings.All(t => t.Milliseconds > 0));
    }

    [TestMethod]
    public void DecisionsAreSharedThroughTheCacheFileAndABadFileIsIgnored()
    {
        string? saved = CpuChoices.CachePath;
        using var tmp = TestPaths.Temp();
        try
        {
            CpuChoices.CachePath = tmp["choices.json"];
            CpuChoices.Reset();
            var first = CpuChoices.GeneratorDtype(48, 96, rows: 8);
            var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(tmp["choices.json"]))!.AsObject();
            var (key, entry) = json.Single();
            StringAssert.Contains(key, MachineInfo.CpuModelName() ?? "unknown cpu");
            // One model name can cover different CPUs: the key holds the family, model and stepping, and a hash of the flags.
            if (MachineInfo.CpuSignature() is { } signature)
            {
                StringAssert.Matches(signature, new System.Text.RegularExpressions.Regex(@"^family \d+ model \d+ stepping (\d+|\?)$"));
                StringAssert.Contains(key, signature);
                StringAssert.Matches(key, new System.Text.RegularExpressions.Regex(@", flags [0-9a-f]{8}\) \|"));
            }
            StringAssert.Contains(key, $"{CoraDevice.Threads} threads");
            Assert.AreEqual(first.Chosen, (string)entry!["Chosen"]!);

            // Another process on this machine reads the decision instead of timing again: a planted decision is taken as is.
            string planted = first.Chosen == "bf16" ? "fp32" : "bf16";
            entry["Chosen"] = planted;
            File.WriteAllText(tmp["choices.json"], json.ToJsonString());
            CpuChoices.Reset();
            Assert.AreEqual(planted, CpuChoices.GeneratorDtype(48, 96, rows: 8).Chosen);

            // A damaged file is ignored (measured again) and replaced by a valid one.
            File.WriteAllText(tmp["choices.json"], "{ not json");
            CpuChoices.Reset();
            var again = CpuChoices.GeneratorDtype(48, 96, rows: 8);
            Assert.IsTrue(again.Timings.All(t => t.Milliseconds > 0));
            Assert.AreEqual(again.Chosen, (string)System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(tmp["choices.json"]))!.AsObject().Single().Value!["Chosen"]!);

            // No cache: decisions are per process.
            CpuChoices.CachePath = null;
            CpuChoices.Reset();
            Assert.IsTrue(CpuChoices.GeneratorDtype(48, 96, rows: 8).Timings.All(t => t.Milliseconds > 0));
        }
        finally { CpuChoices.CachePath = saved; CpuChoices.Reset(); }
    }
}
