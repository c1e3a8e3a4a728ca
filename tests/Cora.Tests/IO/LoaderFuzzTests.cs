using System.Diagnostics;
using Cora.Cli;
using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Llm;

namespace Cora.Tests;

/// <summary>
/// Each loader of untrusted bytes under seeded random damage (bit flips, truncations, overwritten runs): every case ends within a
/// bounded time with a clear error or a correct result, and the process's memory stays bounded. The model zip and TSV loaders
/// have theirs in <see cref="HardeningTests"/>.
/// </summary>
[TestClass]
public class LoaderFuzzTests
{
    private static readonly Type[] Clear = { typeof(InvalidDataException), typeof(NotSupportedException), typeof(FileNotFoundException), typeof(EndOfStreamException) };

    private static byte[] Damage(byte[] original, Random rng, int i)
    {
        var b = (byte[])original.Clone();
        switch (i % 3)
        {
            case 0: for (int k = 0; k < 1 + rng.Next(6); k++) b[rng.Next(b.Length)] ^= (byte)(1 << rng.Next(8)); break;
            case 1: b = b[..rng.Next(b.Length)]; break;
            default: int at = rng.Next(b.Length), n = Math.Min(b.Length - at, 1 + rng.Next(16)); rng.NextBytes(b.AsSpan(at, n)); break;
        }
        return b;
    }

    /// <summary>Runs <paramref name="cases"/> damaged copies through <paramref name="load"/>; returns (clean errors, loads).</summary>
    private static (int refused, int loaded) Fuzz(string name, byte[] original, string path, Action<string> load, int cases = 120, Type[]? alsoClear = null)
    {
        var rng = new Random(17);
        int refused = 0, loaded = 0;
        long rssBefore = Process.GetCurrentProcess().WorkingSet64;
        for (int i = 0; i < cases; i++)
        {
            File.WriteAllBytes(path, Damage(original, rng, i));
            var task = Task.Run(() =>
            {
                try { load(path); return (Exception?)null; }
                catch (Exception e) { return e; }
            });
            Assert.IsTrue(task.Wait(TimeSpan.FromSeconds(30)), $"{name} case {i} hung");
            var error = task.Result;
            if (error is null) { loaded++; continue; }
            var inner = error is AggregateException a && a.InnerException is not null ? a.InnerException : error;
            Assert.IsTrue(Clear.Concat(alsoClear ?? Array.Empty<Type>()).Any(t => t.IsInstanceOfType(inner)), $"{name} case {i}: {inner.GetType().Name}: {inner.Message}");
            Assert.IsFalse(inner.Message.Contains("c10::") || inner.Message.Contains("   at "), $"{name} case {i}: native frames in '{inner.Message}'");
            refused++;
        }
        long growth = Process.GetCurrentProcess().WorkingSet64 - rssBefore;
        Assert.IsTrue(growth < 1L << 30, $"{name}: the working set grew {growth >> 20} MiB over {cases} damaged files");
        Assert.AreEqual(cases, refused + loaded);
        return (refused, loaded);
    }

    [TestMethod]
    public void SafetensorsHeadersAndData()
    {
        using var tmp = TestPaths.Temp();
        var original = File.ReadAllBytes(Path.Combine(Synthetic.LlmPath, "model.safetensors"));
        var (refused, _) = Fuzz("safetensors", original, tmp["m.safetensors"], p =>
        {
            var f = SafetensorsFile.Open(p);
            foreach (var name in f.Entries.Keys) f.Read(name).Dispose();
        });
        Assert.IsTrue(refused > 0, "truncations are refused");
    }

    [TestMethod]
    public void Llama2cCheckpoints()
    {
        using var tmp = TestPaths.Temp();
        var original = File.ReadAllBytes(Synthetic.Llama2cPath);
        var (refused, _) = Fuzz("llama2.c", original, tmp["m.bin"], p => CheckpointLoader.LoadLlama2c(p).Dispose(), cases: 60);
        Assert.IsTrue(refused > 0);
    }

    [TestMethod]
    public void HuggingFaceConfigs()
    {
        using var tmp = TestPaths.Temp();
        string hf = Synthetic.CopyLlmFolder(tmp["hf"]);
        var original = File.ReadAllBytes(Path.Combine(hf, "config.json"));
        var (refused, _) = Fuzz("config.json", original, Path.Combine(hf, "config.json"), _ => CheckpointLoader.LoadHuggingFace(hf).Dispose(), cases: 60,
            alsoClear: new[] { typeof(ArgumentException) });
        Assert.IsTrue(refused > 0);
    }

    [TestMethod]
    public void ScoredParquetParts()
    {
        using var tmp = TestPaths.Temp();
        var rows = Enumerable.Range(0, 200).Select(i => new ScoredRow(i, i % 7, 100 + i, i * 0.01f, 0.5f, i % 5)).ToList();
        ScoreShards.WritePart(tmp["ok.parquet"], rows);
        Assert.AreEqual(200, ScoreShards.ReadPart(tmp["ok.parquet"]).Count, "an intact part reads back");
        var (refused, _) = Fuzz("parquet", File.ReadAllBytes(tmp["ok.parquet"]), tmp["p.parquet"], p => ScoreShards.ReadPart(p), cases: 90);
        Assert.IsTrue(refused > 0);
    }
}
