namespace Cora.Tests;

/// <summary>
/// tools/sweep/run.sh's bookkeeping: the row it appends, what it keeps of a finished run, and the refusal to run a finished
/// NAME again. The script runs as written in a scratch repository; the CLI it calls is a stand-in `dotnet` on PATH that writes
/// what `cora train` writes (the result JSON and a checkpoint set), so the test needs no data, model or build.
/// </summary>
[TestClass]
public class SweepRunTests
{
    private const string StandIn = """
        #!/usr/bin/env bash
        [ -z "${STAND_IN_FAILS:-}" ] || { echo "stand-in: training failed" >&2; exit 3; }
        while [ $# -gt 0 ]; do case "$1" in --json) json=$2; shift;; --checkpoint-dir) ckpt=$2; shift;; esac; shift; done
        mkdir -p "$ckpt"
        for f in best-00000002 current-00000004 optimizer-00000004; do echo weights > "$ckpt/$f.safetensors"; done
        echo '{"valid": []}' > "$ckpt/state.json"
        echo '{"auc": 0.732149, "uauc": 0.68, "warm": {"auc": 0.75}, "cold": {"auc": 0.68}, "steps": 4, "best_step": 2, "wall_seconds": 12.7, "peak_mib": 100}' > "$json"
        echo "stand-in: trained"
        """;

    [TestMethod]
    public void AFinishedRunKeepsItsRowAndBestWeightsDropsItsResumeFilesAndIsNotRunTwice()
    {
        using var tmp = TestPaths.Temp();
        string root = Path.Combine(tmp.Path, "repo"), script = Path.Combine(root, "tools", "sweep", "run.sh");
        Directory.CreateDirectory(Path.GetDirectoryName(script)!);
        File.Copy(Path.Combine(TestPaths.RepoRoot, "tools", "sweep", "run.sh"), script);
        Git(root, "init -q");
        Git(root, "add -A");
        Git(root, "-c user.name=test -c user.email=test@example.com commit -q -m sweep");
        string commit = Git(root, "rev-parse --short HEAD").Trim();

        string shared = Path.Combine(tmp.Path, "shared"), runs = Path.Combine(tmp.Path, "runs"), bin = Path.Combine(tmp.Path, "stand-in");
        foreach (string f in new[] { "data/ml-1m-collm/train.tsv", "data/ml-1m-collm/valid.tsv", "data/ml-1m-collm/items.tsv", "models/stories260K/stories260K.bin" })
        {
            Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(shared, f))!);
            File.WriteAllText(Path.Combine(shared, f), "");
        }
        Directory.CreateDirectory(Path.Combine(runs, $"bin-{commit}"));
        File.WriteAllText(Path.Combine(runs, $"bin-{commit}", "cora.dll"), "");   // the build for this commit, there already
        Directory.CreateDirectory(bin);
        File.WriteAllText(Path.Combine(bin, "dotnet"), StandIn.Replace("\r\n", "\n") + "\n");
        File.SetUnixFileMode(Path.Combine(bin, "dotnet"), UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var env = new Dictionary<string, string>
        {
            ["PATH"] = bin + ":" + Environment.GetEnvironmentVariable("PATH"), ["CORA_SHARED"] = shared, ["CORA_SWEEP_DIR"] = runs,
        };
        string tsv = Path.Combine(root, "docs", "results", "sweep.tsv"), ckpt = Path.Combine(runs, "r1", "ckpt");

        // A run that fails writes no row and keeps everything a rerun resumes from.
        var failing = new Dictionary<string, string>(env) { ["STAND_IN_FAILS"] = "1" };
        var (code, output) = TestProcess.Run("bash", $"\"{script}\" r1 --seed 3", 60, root, failing);
        Assert.AreEqual(3, code, output);
        Assert.IsFalse(File.Exists(tsv), "no row for a failed run");

        (code, output) = TestProcess.Run("bash", $"\"{script}\" r1 --seed 3", 60, root, env);
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "tools/sweep/run.sh: r1 done in");
        var lines = File.ReadAllLines(tsv);
        Assert.AreEqual(2, lines.Length, "the header and one row");
        StringAssert.StartsWith(lines[0], "name\tdate\tcommit\tcpu\toptions\tvalid_auc");
        var row = lines[1].Split('\t');
        Assert.AreEqual("r1", row[0]);
        Assert.AreEqual(commit, row[2], "the row records the commit that ran");
        Assert.AreEqual("--seed 3", row[4]);
        Assert.AreEqual("0.7321", row[5], "AUC rounded to four places");
        Assert.AreEqual("2", row[10], "the kept step");
        Assert.IsTrue(File.Exists(Path.Combine(ckpt, "best-00000002.safetensors")) && File.Exists(Path.Combine(ckpt, "state.json")),
            "the best weights and the curve stay");
        Assert.AreEqual(0, Directory.GetFiles(ckpt, "current-*").Length + Directory.GetFiles(ckpt, "optimizer-*").Length,
            "the resume-only files of a finished run are removed");

        (code, output) = TestProcess.Run("bash", $"\"{script}\" r1 --seed 3", 60, root, env);
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(output, "tools/sweep/run.sh: r1 is finished (its row is in docs/results/sweep.tsv)");
        Assert.AreEqual(2, File.ReadAllLines(tsv).Length, "no second row");
        Assert.IsFalse(output.Contains("stand-in: trained"), "nothing trained");
        Assert.IsTrue(File.Exists(Path.Combine(ckpt, "best-00000002.safetensors")));

        (code, output) = TestProcess.Run("bash", $"\"{script}\" r1x --seed 3", 60, root, env);
        Assert.AreEqual(0, code, "a name that only starts like a finished one is another run: " + output);
        Assert.AreEqual(3, File.ReadAllLines(tsv).Length);
    }

    private static string Git(string cwd, string args)
    {
        var (code, output) = TestProcess.Run("git", args, 60, cwd);
        Assert.AreEqual(0, code, $"git {args}: {output}");
        return output;
    }
}
