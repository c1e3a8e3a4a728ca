using System.Diagnostics;
using System.CommandLine;
using Cora.Cli;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;

namespace Cora.Tests;

/// <summary>
/// <c>cora score</c> as an Indexed Job runs it, on one machine: N processes with different shard indices (one killed mid-shard and
/// rerun) give, merged, exactly the single-process output; <c>cora score verify</c> checks completeness; reruns are byte-identical.
/// </summary>
[TestClass]
public class ScoreShardTests
{
    private static Process Start(params string[] args)
    {
        var psi = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "cora.dll"));
        foreach (var a in args) psi.ArgumentList.Add(a);
        return Process.Start(psi)!;
    }

    private static void Run(params string[] args)
    {
        using var p = Start(args);
        var err = p.StandardError.ReadToEndAsync();
        p.StandardOutput.ReadToEnd();
        Assert.IsTrue(p.WaitForExit(TimeSpan.FromMinutes(5)));
        Assert.AreEqual(0, p.ExitCode, err.Result);
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(900_000)]
    public void ShardedProcessesOneKilledAndRerunMergeToTheSingleProcessOutput()
    {
        using var dir = TestPaths.Temp();
        string model = dir["m.zip"], input = dir["candidates.tsv"];
        InteractionTsv.Write(dir["valid.tsv"], Slice.Valid.Skip(1000).Take(60));                   // train evaluates on all of --valid: keep it small
        var (code, _, err) = CliTests.Cli("train", "--train", Slice.TrainPath, "--valid", dir["valid.tsv"], "--items", Slice.ItemsPath, "--llm", Slice.LlmPath,
            "--method", "cora", "--out", model, "--max-rows", "64", "--max-steps", "2", "--max-valid-rows", "16", "--mf-dim", "16", "--mf-epochs", "2",
            "--generator-layers", "1", "--generator-hidden", "32", "--generator-ffn", "64");
        Assert.AreEqual(0, code, err);
        InteractionTsv.Write(input, Slice.Valid.Take(90));
        InteractionTsv.Write(dir["users.tsv"], Slice.Valid.Take(12));

        // Every run in its own process with the same thread count (libtorch's reductions may differ between thread counts, and the
        // test host's count is changed by other tests).
        Run("score", "--model", model, "--data", input, "--out", dir["single"], "--threads", "2");

        // Three workers at once; worker 1 is killed as soon as it has started scoring, then rerun (as the Job controller would).
        string multi = dir["multi"];
        var workers = Enumerable.Range(0, 3).Select(i => Start("score", "--model", model, "--data", input, "--out", multi, "--shard", $"{i}/3", "--threads", "2")).ToArray();
        string first = workers[1].StandardOutput.ReadLine() ?? "";
        StringAssert.StartsWith(first, "shard 1/3:");
        workers[1].Kill(entireProcessTree: true);
        workers[1].WaitForExit();
        foreach (var w in new[] { workers[0], workers[2] })
        {
            Assert.IsTrue(w.WaitForExit(TimeSpan.FromMinutes(5)));
            Assert.AreEqual(0, w.ExitCode, w.StandardError.ReadToEnd());
        }
        Assert.IsFalse(File.Exists(Path.Combine(multi, ScoreShards.ManifestName(1))), "a killed shard leaves no manifest");
        (code, _, err) = CliTests.Cli("score", "verify", multi);
        Assert.AreEqual(1, code, "an incomplete run does not verify");
        StringAssert.Contains(err, "shard 1/3");
        Run("score", "--model", model, "--data", input, "--out", multi, "--shard", "1/3", "--threads", "2");

        (code, var stdout, err) = CliTests.Cli("score", "verify", multi);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "every input row covered once");
        Assert.AreEqual(0, Directory.GetFiles(multi).Count(f => f.Contains(".tmp")), "no temporaries left behind");

        var single = ScoreShards.ReadPart(Path.Combine(dir["single"], ScoreShards.PartName(0))).OrderBy(r => r.Row).ToList();
        var merged = Enumerable.Range(0, 3).SelectMany(i => ScoreShards.ReadPart(Path.Combine(multi, ScoreShards.PartName(i)))).OrderBy(r => r.Row).ToList();
        Assert.AreEqual(90, single.Count);
        CollectionAssert.AreEqual(single, merged, "row for row, bit-identical scores");
        foreach (var shard in Enumerable.Range(0, 3))
            Assert.IsTrue(ScoreShards.ReadPart(Path.Combine(multi, ScoreShards.PartName(shard))).All(r => ScoreShards.ShardOf(r.User, 3) == shard), "a user's rows stay in one shard");
        var users = single.GroupBy(r => r.User).First(g => g.Count() > 1);
        CollectionAssert.AreEqual(Enumerable.Range(1, users.Count()).ToArray(), users.OrderByDescending(r => r.Score).Select(r => r.Rank).ToArray(), "rank within the user by score");

        // Idempotent: rerunning a shard rewrites the same bytes.
        string sha = LlmFiles.FileSha256(Path.Combine(multi, ScoreShards.PartName(0)));
        Run("score", "--model", model, "--data", input, "--out", multi, "--shard", "0/3", "--threads", "2");
        Assert.AreEqual(sha, LlmFiles.FileSha256(Path.Combine(multi, ScoreShards.PartName(0))));

        // A changed part no longer verifies.
        File.AppendAllText(Path.Combine(multi, ScoreShards.PartName(2)), "x");
        (code, _, err) = CliTests.Cli("score", "verify", multi);
        Assert.AreEqual(1, code);
        StringAssert.Contains(err, "does not match its manifest");

        // Candidates from the CF stage: K per input row, ranked by the model.
        (code, _, err) = CliTests.Cli("score", "--model", model, "--data", dir["users.tsv"], "--out", dir["cand"], "--candidates", "3");
        Assert.AreEqual(0, code, err);
        var cand = ScoreShards.ReadPart(Path.Combine(dir["cand"], ScoreShards.PartName(0)));
        Assert.AreEqual(12 * 3, cand.Count);
        Assert.IsTrue(cand.GroupBy(r => r.Row).All(g => g.Select(r => r.Rank).OrderBy(x => x).SequenceEqual(new[] { 1, 2, 3 })));
    }

    [TestMethod]
    public void TheShardComesFromTheIndexedJobEnvironment()
    {
        var env = new Dictionary<string, string?> { ["JOB_COMPLETION_INDEX"] = "2", ["CORA_SHARDS"] = "4" };
        Assert.AreEqual((2, 4), ScoreCommand.ResolveShard(null, 0, k => env.GetValueOrDefault(k)));
        Assert.AreEqual((2, 8), ScoreCommand.ResolveShard(null, 8, k => env.GetValueOrDefault(k)), "--shards wins over CORA_SHARDS");
        Assert.AreEqual((1, 3), ScoreCommand.ResolveShard("1/3", 0, k => env.GetValueOrDefault(k)), "--shard wins over the environment");
        Assert.AreEqual((0, 1), ScoreCommand.ResolveShard(null, 0, _ => null));
        env["JOB_COMPLETION_INDEX"] = "4";
        var e = Assert.ThrowsExactly<UsageException>(() => ScoreCommand.ResolveShard(null, 0, k => env.GetValueOrDefault(k)));
        StringAssert.Contains(e.Message, "JOB_COMPLETION_INDEX=4");
        var (code, _, err) = CliTests.Cli("score", "--model", "m.zip", "--data", "d.tsv", "--out", "o", "--shard", "3/3");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--shard");
        // Users spread over shards; the hash is fixed (FNV-1a), so these values never change.
        Assert.AreEqual(ScoreShards.ShardOf(12345, 7), ScoreShards.ShardOf(12345, 7));
        var counts = Enumerable.Range(1, 7000).GroupBy(u => ScoreShards.ShardOf(u, 7)).Select(g => g.Count()).ToList();
        Assert.AreEqual(7, counts.Count);
        Assert.IsTrue(counts.Min() > 800, "roughly even shards");
    }
}

[TestClass]
public class DeploymentFileTests
{
    [TestMethod]
    public void TheIndexedJobRunsCoraScoreWithValidArguments()
    {
        string path = Path.Combine(TestPaths.RepoRoot, "deploy", "kubernetes", "score-job.yaml");
        var yaml = new YamlDotNet.RepresentationModel.YamlStream();
        using (var r = new StreamReader(path)) yaml.Load(r);
        var root = (YamlDotNet.RepresentationModel.YamlMappingNode)yaml.Documents[0].RootNode;
        string S(YamlDotNet.RepresentationModel.YamlNode n, params string[] keys)
        {
            foreach (var k in keys) n = ((YamlDotNet.RepresentationModel.YamlMappingNode)n)[k];
            return ((YamlDotNet.RepresentationModel.YamlScalarNode)n).Value!;
        }
        var spec = root["spec"];
        Assert.AreEqual("Job", S(root, "kind"));
        Assert.AreEqual("batch/v1", S(root, "apiVersion"));
        Assert.AreEqual("Indexed", S(spec, "completionMode"));
        int completions = int.Parse(S(spec, "completions"));
        Assert.IsTrue(int.Parse(S(spec, "backoffLimitPerIndex")) >= 1, "each shard is retried on its own");
        var rules = (YamlDotNet.RepresentationModel.YamlSequenceNode)((YamlDotNet.RepresentationModel.YamlMappingNode)spec)["podFailurePolicy"]["rules"];
        Assert.IsTrue(rules.Children.Any(rule => S(rule, "action") == "FailIndex"), "usage errors fail the index");
        Assert.AreEqual("Never", S(spec, "template", "spec", "restartPolicy"));
        var container = ((YamlDotNet.RepresentationModel.YamlSequenceNode)spec["template"]["spec"]["containers"]).Children[0];
        var args = ((YamlDotNet.RepresentationModel.YamlSequenceNode)container["args"]).Children.Select(n => ((YamlDotNet.RepresentationModel.YamlScalarNode)n).Value!).ToArray();
        var env = ((YamlDotNet.RepresentationModel.YamlSequenceNode)container["env"]).Children.ToDictionary(e => S(e, "name"), e => S(e, "value"));
        Assert.AreEqual(completions.ToString(), env[ScoreCommand.ShardCountVariable], "CORA_SHARDS equals completions");
        Assert.AreEqual(completions.ToString(), S(spec, "parallelism"));
        var (parse, _) = CoraCli.Parse(args, new CliContext(TextWriter.Null, TextWriter.Null, default));
        Assert.AreEqual(0, parse.Errors.Count, string.Join("; ", parse.Errors.Select(e => e.Message)));
        Assert.AreEqual("score", parse.CommandResult.Command.Name);
        Assert.IsFalse(args.Contains("--shard"), "the index comes from JOB_COMPLETION_INDEX");
        var mounts = ((YamlDotNet.RepresentationModel.YamlSequenceNode)container["volumeMounts"]).Children;
        Assert.AreEqual("true", S(mounts.Single(m => S(m, "name") == "models"), "readOnly"), "the frozen LLM is mounted read-only");
        Assert.AreEqual(completions, Enumerable.Range(0, completions).Select(i => ScoreCommand.ResolveShard(null, 0, k => k == "JOB_COMPLETION_INDEX" ? i.ToString() : env.GetValueOrDefault(k))).Distinct().Count());
    }
}

/// <summary><c>cora score verify</c> passes only the exact set of parts and manifests of one run, and never blocks on a FIFO.</summary>
[TestClass]
public class ScoreVerifyExactSetTests
{
    private static readonly Lazy<(string dir, string model, string data)> Scored = new(() =>
    {
        string dir = Path.Combine(Path.GetDirectoryName(Synthetic.Paths.Train)!, "verify");   // removed with the synthetic folder
        Directory.CreateDirectory(dir);
        string model = Path.Combine(dir, "m.zip"), data = Path.Combine(dir, "rows.tsv");
        InteractionTsv.Write(Path.Combine(dir, "train.tsv"), Slice.Train.Take(300));
        InteractionTsv.Write(Path.Combine(dir, "valid.tsv"), Slice.Valid.Where(r => r.Label).Take(20).Concat(Slice.Valid.Where(r => !r.Label).Take(20)));
        var (code, _, err) = CliTests.Cli("train", "--train", Path.Combine(dir, "train.tsv"), "--valid", Path.Combine(dir, "valid.tsv"), "--items", Slice.ItemsPath, "--method", "mf", "--out", model, "--mf-dim", "4", "--mf-epochs", "1");
        Assert.AreEqual(0, code, err);
        InteractionTsv.Write(data, Slice.Valid.Take(40));
        return (dir, model, data);
    });

    private static string Fresh(string name)
    {
        var (dir, model, data) = Scored.Value;
        string o = Path.Combine(dir, name);
        foreach (var s in new[] { "0/2", "1/2" })
        {
            var (code, _, err) = CliTests.Cli("score", "--model", model, "--data", data, "--out", o, "--shard", s);
            Assert.AreEqual(0, code, err);
        }
        Assert.AreEqual(0, CliTests.Cli("score", "verify", o).code, "the complete set verifies");
        return o;
    }

    private static string Verify(string dir)
    {
        var task = Task.Run(() => CliTests.Cli("score", "verify", dir));
        Assert.IsTrue(task.Wait(TimeSpan.FromSeconds(60)), "verify returned (it did not block)");
        Assert.AreEqual(1, task.Result.code, task.Result.stdout);
        return task.Result.stderr;
    }

    [TestMethod]
    public void ACopiedOrStrayPartFailsVerification()
    {
        string o = Fresh("copied");
        File.Copy(Path.Combine(o, "part-00000.parquet"), Path.Combine(o, "part-00002.parquet"));
        File.Copy(Path.Combine(o, "part-00000.json"), Path.Combine(o, "part-00002.json"));
        string err = Verify(o);
        StringAssert.Contains(err, "part-00002.json: describes shard 0 (part-00000.parquet); a manifest copied or renamed from another shard's");
        StringAssert.Contains(err, "part-00002.parquet: not part of this run's 2 shard(s)");
        string stray = Fresh("stray");
        File.WriteAllText(Path.Combine(stray, "extra.parquet"), "x");
        StringAssert.Contains(Verify(stray), "extra.parquet: not part of this run's 2 shard(s)");
    }

    [TestMethod]
    public void AbsurdCountsAreNamedWithTheFileAndAFifoIsNeverOpened()
    {
        string o = Fresh("absurd");
        var m = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(o, "part-00001.json")))!;
        m["input_rows"] = long.MaxValue;
        File.WriteAllText(Path.Combine(o, "part-00001.json"), m.ToJsonString());
        StringAssert.Contains(Verify(o), "part-00001.json: row counts out of range");

        string f = Fresh("fifo");
        File.Delete(Path.Combine(f, "part-00001.parquet"));
        using (var mk = System.Diagnostics.Process.Start("mkfifo", Path.Combine(f, "part-00001.parquet"))) mk.WaitForExit();
        StringAssert.Contains(Verify(f), "part-00001.parquet: a fifo, not a part or a manifest");
    }

    [TestMethod]
    public void FifosWhereTheToolsReadFilesFailAtOnce()
    {
        using var tmp = TestPaths.Temp();
        using (var mk = System.Diagnostics.Process.Start("mkfifo", tmp["llm.bin"])) mk.WaitForExit();
        using (var mk = System.Diagnostics.Process.Start("mkfifo", tmp["data.tsv"])) mk.WaitForExit();
        string hf = Synthetic.CopyLlmFolder(tmp["hf"]);
        File.Delete(Path.Combine(hf, "config.json"));
        using (var mk = System.Diagnostics.Process.Start("mkfifo", Path.Combine(hf, "config.json"))) mk.WaitForExit();
        foreach (var (act, text) in new (Action, string)[]
        {
            (() => Microsoft.ML.Cora.Llm.LanguageModel.Load(tmp["llm.bin"]), "is a fifo, not a regular file"),
            (() => Microsoft.ML.Cora.Llm.LanguageModel.Load(hf), "Model config"),
            (() => InteractionTsv.Read(tmp["data.tsv"]), "Interactions file"),
        })
        {
            var task = Task.Run(() => { try { act(); return ""; } catch (Exception e) { return e.Message; } });
            Assert.IsTrue(task.Wait(TimeSpan.FromSeconds(30)), $"blocked: {text}");
            StringAssert.Contains(task.Result, text);
        }
    }
}
