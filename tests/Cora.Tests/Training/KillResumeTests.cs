using System.Diagnostics;
using System.Text.Json.Nodes;

namespace Cora.Tests;

[TestClass]
public class KillResumeTests
{
    private static string[] TrainArgs(string dir, string train, string valid, string outName, string? ckpt) =>
        new[] { "train", "--train", train, "--valid", valid, "--items", Slice.ItemsPath,
                "--llm", Slice.LlmPath, "--method", "cora", "--out", Path.Combine(dir, outName + ".zip"), "--json", Path.Combine(dir, outName + ".json"),
                "--max-steps", "8", "--validate-every", "2", "--mf-dim", "16", "--mf-epochs", "2", "--seed", "7",
                "--generator-layers", "1", "--generator-hidden", "32", "--generator-ffn", "64" }
            .Concat(ckpt is null ? Array.Empty<string>() : new[] { "--checkpoint-dir", ckpt }).ToArray();

    private static Process Start(string[] args, string? scratch = null)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (scratch is not null) psi.Environment[Microsoft.ML.Cora.IO.ScratchSpace.Variable] = scratch;
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cora.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        var p = Process.Start(psi)!;
        p.OutputDataReceived += (_, _) => { };
        p.ErrorDataReceived += (_, _) => { };
        p.BeginOutputReadLine();
        p.BeginErrorReadLine();
        return p;
    }

    private static void RunToEnd(string[] args)
    {
        using var p = Start(args);
        Assert.IsTrue(p.WaitForExit(TimeSpan.FromMinutes(5)), "training finished");
        Assert.AreEqual(0, p.ExitCode);
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(900_000)]
    public void TrainingKilledWithSigkillResumesToTheSameMetrics()
    {
        using var tmp = TestPaths.Temp();
        string train = tmp["train.tsv"], valid = tmp["valid.tsv"];
        File.WriteAllLines(train, File.ReadLines(Slice.TrainPath).Take(1001));
        File.WriteAllLines(valid, File.ReadLines(Slice.ValidPath).Take(101));

        RunToEnd(TrainArgs(tmp.Path, train, valid, "reference", null));

        string ckpt = tmp["ckpt"];
        int killAfter = 2 * new Random().Next(1, 3);       // a checkpoint at step 2 or 4, then SIGKILL
        using (var p = Start(TrainArgs(tmp.Path, train, valid, "killed", ckpt)))
        {
            var sw = Stopwatch.StartNew();
            string state = Path.Combine(ckpt, "state.json");
            while (!p.HasExited && sw.Elapsed < TimeSpan.FromMinutes(5))
            {
                if (File.Exists(state) && (int)JsonNode.Parse(File.ReadAllText(state))!["Step"]! >= killAfter) break;
                Thread.Sleep(100);
            }
            Assert.IsFalse(p.HasExited, "the child was still training when killed");
            p.Kill(entireProcessTree: true);                 // SIGKILL on Linux
            p.WaitForExit();
        }
        Assert.IsFalse(File.Exists(tmp["killed.json"]), "the killed run never finished");
        RunToEnd(TrainArgs(tmp.Path, train, valid, "resumed", ckpt));

        var a = JsonNode.Parse(File.ReadAllText(tmp["reference.json"]))!;
        var b = JsonNode.Parse(File.ReadAllText(tmp["resumed.json"]))!;
        foreach (var k in new[] { "auc", "uauc", "logloss" })
            Assert.AreEqual((double?)a[k], (double?)b[k], $"{k}: resumed run differs from the uninterrupted one");
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(600_000)]
    public void ATrainingKilledWithSigkillLeavesNoTemporaryBehindTheNextStart()
    {
        using var tmp = TestPaths.Temp();
        string train = tmp["train.tsv"], valid = tmp["valid.tsv"], scratch = Directory.CreateDirectory(tmp["scratch"]).FullName;
        File.WriteAllLines(train, File.ReadLines(Slice.TrainPath).Take(1001));
        File.WriteAllLines(valid, File.ReadLines(Slice.ValidPath).Take(101));
        var args = TrainArgs(tmp.Path, train, valid, "killed", null).Select(a => a == "8" ? "400" : a).ToArray();   // long enough to be killed
        using (var p = Start(args, scratch))
        {
            var sw = Stopwatch.StartNew();
            // Its best snapshot, or the temporary of its atomic write in progress.
            while (!p.HasExited && sw.Elapsed < TimeSpan.FromMinutes(5) && !Directory.EnumerateFileSystemEntries(scratch, "*-best-*").Any()) Thread.Sleep(20);
            Assert.IsFalse(p.HasExited, "the child was still training when killed");
            p.Kill(entireProcessTree: true);                 // SIGKILL on Linux
            p.WaitForExit();
        }
        Assert.IsTrue(Directory.EnumerateFileSystemEntries(scratch, "*-best-*").Any(), "the killed run left its snapshot");
        // The next process to use the scratch folder removes what the dead one left (its lock is free); a live owner's entries stay.
        string live = Path.Combine(scratch, ".owner-liveowner000.lock");
        using var held = new FileStream(live, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None);
        File.WriteAllText(Path.Combine(scratch, "liveowner000-best-x.safetensors"), "x");
        int removed = Microsoft.ML.Cora.IO.ScratchSpace.RemoveDead(scratch, "nobody");
        Assert.IsTrue(removed >= 1, $"{removed} entries removed");
        CollectionAssert.AreEquivalent(new[] { ".owner-liveowner000.lock", "liveowner000-best-x.safetensors" },
            Directory.EnumerateFileSystemEntries(scratch).Select(Path.GetFileName).ToArray(), "only the live owner's entries remain");
    }
}
