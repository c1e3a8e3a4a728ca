using System.Text.Json.Nodes;
using Cora.Cli;

namespace Cora.Tests;

[TestClass]
public class CliTests
{
    internal static (int code, string stdout, string stderr) Cli(params string[] args)
    {
        var o = new StringWriter(); var e = new StringWriter();
        int code = CoraCli.Run(args, o, e);
        return (code, o.ToString(), e.ToString());
    }

    private static string Data(string f) => f switch { "train.tsv" => Slice.TrainPath, "valid.tsv" => Slice.ValidPath, _ => Slice.ItemsPath };

    /// <summary>Small TSV slices written once per test run.</summary>
    private static readonly Lazy<(string dir, string train, string valid)> Slices = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), "cora-cli-tests-" + Environment.ProcessId);
        Directory.CreateDirectory(dir);
        string t = Path.Combine(dir, "train.tsv"), v = Path.Combine(dir, "valid.tsv");
        File.WriteAllLines(t, File.ReadLines(Data("train.tsv")).Take(2001));
        File.WriteAllLines(v, File.ReadLines(Data("valid.tsv")).Take(201));
        return (dir, t, v);
    });

    private static readonly Lazy<string> MfModel = new(() =>
    {
        var (dir, t, v) = Slices.Value;
        string model = Path.Combine(dir, "mf.zip");
        var (code, _, err) = Cli("train", "--train", t, "--valid", v, "--items", Data("items.tsv"), "--method", "mf", "--out", model, "--mf-dim", "16", "--mf-epochs", "5");
        Assert.AreEqual(0, code, err);
        return model;
    });

    [TestMethod]
    public void TrainCoraThenEvaluatePredictRecommend()
    {
        var (dir, t, v) = Slices.Value;
        string model = Path.Combine(dir, "cora.zip"), json = Path.Combine(dir, "train.json"), png = Path.Combine(dir, "curves.png");
        var (code, stdout, err) = Cli("train", "--train", t, "--valid", v, "--items", Data("items.tsv"), "--llm", Slice.LlmPath,
            "--method", "cora", "--out", model, "--max-steps", "2", "--mf-dim", "16", "--mf-epochs", "2", "--json", json, "--plot", png,
            "--generator-layers", "1", "--generator-hidden", "32", "--generator-ffn", "64", "--cf-token-rms", "0.25");
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "overall  200");
        Assert.IsTrue(File.Exists(model));
        using (var saved = Microsoft.ML.Cora.Estimators.CoraTransformer.Find(Microsoft.ML.Cora.CoraMLContextExtensions.LoadCora(new Microsoft.ML.MLContext().Model, model, out _)).Model)
        {
            Assert.AreEqual(0.25, saved.Options.QueryGenerator.CfTokenRms, "--cf-token-rms reaches the model");
            Assert.IsTrue(saved.Generator!.token_scale.data<float>().ToArray().All(x => x != 1f), "and its scale was set from the training rows");
        }
        var j = JsonNode.Parse(File.ReadAllText(json))!;
        Assert.AreEqual(200, (int)j["rows"]!);
        Assert.AreEqual(200, (int)j["warm"]!["rows"]! + (int)j["cold"]!["rows"]!);
        Assert.AreEqual("cora", (string)j["method"]!);
        Assert.AreEqual(2, (int)j["steps"]!, "--max-steps 2: the run's steps");
        Assert.IsTrue((int)j["best_step"]! is >= 0 and <= 2, "the step whose weights were kept");
        Assert.IsFalse((bool)j["stopped_early"]!);
        var png8 = File.ReadAllBytes(png)[..8];
        CollectionAssert.AreEqual(new byte[] { 0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A }, png8, "a PNG file");
        // Read back: the size asked for, and both series drawn in their colours (loss on the left axis, AUC on the right).
        Assert.AreEqual((900, 500), PngPixels.Size(png));
        Assert.IsTrue(PngPixels.Count(png, Microsoft.ML.Cora.Plots.TrainingPlot.LossColor) > 50, "loss curve drawn");
        Assert.IsTrue(PngPixels.Count(png, Microsoft.ML.Cora.Plots.TrainingPlot.AucColor) > 20, "validation AUC drawn");

        string evalJson = Path.Combine(dir, "eval.json");
        (code, stdout, err) = Cli("evaluate", "--model", model, "--data", v, "--json", evalJson);
        Assert.AreEqual(0, code, err);
        var e = JsonNode.Parse(File.ReadAllText(evalJson))!;
        Assert.AreEqual((double)j["auc"]!, (double)e["auc"]!, 1e-12, "evaluate reproduces the training run's numbers");
        foreach (var k in new[] { "auc", "uauc", "logloss", "rows", "warm", "cold" }) Assert.IsNotNull(e[k], k);

        string probeJson = Path.Combine(dir, "probe.json");
        (code, stdout, err) = Cli("inspect", "--model", model, "--data", v, "--rows", "50", "--json", probeJson);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "generator probe on 50 rows");
        StringAssert.Contains(stdout, "CF stage (mf) on 50 rows");
        var probe = JsonNode.Parse(File.ReadAllText(probeJson))!;
        Assert.AreEqual(50, (int)probe["rows"]!);
        foreach (var k in new[] { "spread", "user_shuffled", "items_zeroed" }) Assert.IsTrue((double)probe[k]! is > 0 and <= 2, k);
        foreach (var k in new[] { "auc", "uauc", "item_only_auc", "item_only_uauc", "personal_auc", "personal_uauc" }) Assert.IsTrue((double)probe["cf"]![k]! is >= 0 and <= 1, k);
        foreach (var k in new[] { "user_rank", "item_rank" }) Assert.IsTrue((double)probe["cf"]![k]! is >= 1 and <= 16, k);   // the slice's MF is 16 wide
        StringAssert.Contains(stdout, "effective rank, items");
        string negatives = Path.Combine(dir, "negatives.tsv");
        File.WriteAllLines(negatives, File.ReadAllLines(v).Where((l, i) => i == 0 || l.Split('\t') is { Length: > 2 } f && f[2] == "0"));
        (code, _, err) = Cli("inspect", "--model", Path.Combine(dir, "no-such-model.zip"), "--data", negatives);
        Assert.AreEqual(2, code, err);
        StringAssert.Contains(err, "positive; the probe needs at least 2 rows and both labels", "the rows are checked before the model is loaded");
        (code, stdout, err) = Cli("inspect", "--model", MfModel.Value, "--data", v, "--json", probeJson);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "no generator probe: only the cora method has a query generator (this model: Mf)");
        var mfProbe = JsonNode.Parse(File.ReadAllText(probeJson))!;
        Assert.IsNull(mfProbe["spread"], "no generator figures for MF alone");
        var (mfCode, mfOut, mfErr) = Cli("evaluate", "--model", MfModel.Value, "--data", v, "--json", evalJson);
        Assert.AreEqual(0, mfCode, mfErr);
        Assert.AreEqual((double)JsonNode.Parse(File.ReadAllText(evalJson))!["auc"]!, (double)mfProbe["cf"]!["auc"]!, 1e-6, "MF alone scores u.i: the probe's CF AUC is evaluate's");

        (code, stdout, err) = Cli("predict", "--model", model, "--user", "7", "--items", "1,2,3", "--data", v);
        Assert.AreEqual(0, code, err);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
        Assert.AreEqual(3, lines.Count);
        var probs = lines.Select(l => double.Parse(l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[0], System.Globalization.CultureInfo.InvariantCulture)).ToList();
        CollectionAssert.AreEqual(probs.OrderByDescending(x => x).ToList(), probs, "best first");
        StringAssert.Contains(stdout, Slice.Items.Title(1));

        (code, stdout, err) = Cli("recommend", "--model", model, "--user", "7", "--top", "4", "--candidates", "8");
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "top 4 for user 7 (from 8 CF candidates");
        Assert.AreEqual(5, stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length);
    }

    [TestMethod]
    public void ErrorsPrintOneLineAndExitNonZero()
    {
        var (dir, t, v) = Slices.Value;
        var cases = new List<(string[] args, string expect, int code)>
        {
            (new[] { "evaluate", "--model", Path.Combine(dir, "missing.zip"), "--data", v }, "model not found", CoraCli.BadInput),
            (new[] { "train", "--train", Path.Combine(dir, "nope.tsv"), "--valid", v, "--items", Data("items.tsv"), "--method", "mf", "--out", Path.Combine(dir, "x.zip") }, $"--train: '{Path.Combine(dir, "nope.tsv")}' does not exist", 2),
            (new[] { "train", "--train", t, "--valid", v, "--items", Data("items.tsv"), "--method", "magic", "--out", Path.Combine(dir, "x.zip") }, "unknown --method 'magic'", 2),
            (new[] { "train", "--train", t, "--valid", v, "--items", Data("items.tsv"), "--method", "cora", "--out", Path.Combine(dir, "x.zip") }, "--llm is required", 2),
            (new[] { "predict", "--model", MfModel.Value, "--user", "99999", "--items", "1" }, "user 99999 is unknown", 1),
            (new[] { "predict", "--model", MfModel.Value, "--user", "7", "--items", "1,abc" }, "'abc' is not an item id", 2),
            (new[] { "recommend", "--model", MfModel.Value }, "--user", 2),
            (new[] { "frobnicate" }, "frobnicate", 2),
        };
        string badColumn = Path.Combine(dir, "badcol.tsv");
        File.WriteAllText(badColumn, "user\titem\tlabel\n1\t2\t1\n");
        cases.Add((new[] { "evaluate", "--model", MfModel.Value, "--data", badColumn }, "missing column 'uid'", CoraCli.BadInput));
        foreach (var (args, expect, expectedCode) in cases)
        {
            var (code, stdout, err) = Cli(args);
            Assert.AreEqual(expectedCode, code, $"{string.Join(' ', args)}\n{err}");
            StringAssert.Contains(err, expect, string.Join(' ', args));
            Assert.IsFalse(err.Contains("   at "), $"no stack trace without --verbose: {err}");
        }
        var (c2, _, e2) = Cli("evaluate", "--model", Path.Combine(dir, "missing.zip"), "--data", v, "--verbose");
        Assert.AreEqual(CoraCli.BadInput, c2);
        StringAssert.Contains(e2, "   at ", "--verbose shows the stack trace");
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(900_000)]
    public void QuickstartRunsOnTheSyntheticStandInAndSaysSo()
    {
        var (code, stdout, err) = Cli("quickstart", "--synthetic", "--max-rows", "40");
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "SYNTHETIC data and a RANDOMLY INITIALISED LLaMA");
        StringAssert.Contains(stdout, "generator products: fp32 (--generator-dtype fp32)", "the quickstart's table is computed the same on every CPU");
        var rows = stdout.Split('\n').Where(l => l.StartsWith("mf ") || l.StartsWith("cora ")).ToList();
        Assert.AreEqual(2, rows.Count, stdout);
        double mfAuc = double.Parse(rows[0].Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.IsTrue(mfAuc > 0.6, $"MF learns the synthetic latent factors (AUC {mfAuc})");
    }

    [TestMethod]
    public void DeviceAndDtypeAreCheckedOnEveryComputingCommandBeforeWork()
    {
        foreach (var cmd in new[] { new[] { "train", "--train", "t", "--valid", "v", "--items", "i", "--out", "o" }, new[] { "evaluate", "--model", "m", "--data", "d" },
                                    new[] { "predict", "--model", "m", "--user", "1", "--items", "1" }, new[] { "recommend", "--model", "m", "--user", "1" },
                                    new[] { "quickstart" }, new[] { "bench", "forward" }, new[] { "bench", "train-step" }, new[] { "bench", "golden", "--llm", "x" } })
        {
            var (code, _, err) = Cli(cmd.Concat(new[] { "--device", "gpu" }).ToArray());
            Assert.AreEqual(2, code, string.Join(" ", cmd));
            StringAssert.Contains(err, "--device: unknown device 'gpu'; use cpu, cuda, cuda:N or auto.");
            (code, _, err) = Cli(cmd.Concat(new[] { "--llm-dtype", "int4" }).ToArray());
            Assert.AreEqual(2, code, string.Join(" ", cmd));
            StringAssert.Contains(err, "--llm-dtype: unknown LLM dtype 'int4'");
            (code, _, err) = Cli(cmd.Concat(new[] { "--generator-dtype", "fp16" }).ToArray());
            Assert.AreEqual(2, code, string.Join(" ", cmd));
            StringAssert.Contains(err, "--generator-dtype: unknown generator dtype 'fp16'; use auto, bf16 or fp32.");
        }
        if (!TorchSharp.torch.cuda.is_available())
        {
            // Valid but absent: one line, exit 1, before the (missing) data files are read.
            var (code, _, err) = Cli("train", "--train", "missing.tsv", "--valid", "v", "--items", "i", "--out", "o", "--method", "mf", "--device", "cuda");
            Assert.AreEqual(1, code);
            StringAssert.Contains(err, "CUDA is not available");
            Assert.IsFalse(err.Contains("missing.tsv"), err);
        }
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]                                   // measurement runs of cora bench
    public void BenchMeasuresRealWorkloadsSideBySideWithThePapersWay()
    {
        using var dir = TestPaths.Temp();
        string[] common = { "--llm", Slice.LlmPath, "--data", Path.GetDirectoryName(Slice.TrainPath)!, "--generator", "compact", "--repeats", "1", "--baseline", "paper", "--threads", "1" };
        foreach (var what in new[] { "train-step", "score", "transform" })
        {
            var args = new[] { "bench", what, "--batch", "2", "--json", dir[what + ".json"] }.Concat(common).Concat(what == "train-step" ? new[] { "--profile" } : new[] { "--rows", "4" }).ToArray();
            var (code, stdout, err) = Cli(args);
            Assert.AreEqual(0, code, err);
            StringAssert.Contains(stdout, "paper's way");
            StringAssert.Contains(stdout, "ratio cora / paper's way");
            var j = JsonNode.Parse(File.ReadAllText(dir[what + ".json"]))!;
            foreach (var o in new[] { j, j["baseline"]! })
            {
                foreach (var key in new[] { "what", "median_s", "rows_per_s", "peak_mb", "threads" }) Assert.IsNotNull(o[key], $"{what}: {key}");
                Assert.IsTrue((double)o["median_s"]! > 0 && (double)o["rows_per_s"]! > 0 && (double)o["peak_mb"]! > 0, what);
                Assert.AreEqual(1, (int)o["threads"]!, "--threads 1 reaches libtorch");
                Assert.IsTrue((double)o["gflop_per_repeat"]! > 0 && (double)o["mm_peak_gflops"]! > 0, what);
            }
            StringAssert.StartsWith((string)j["what"]!, what);
            Assert.AreEqual((double)j["median_s"]! / (double)j["baseline"]!["median_s"]!, (double)j["ratio"]!, 1e-9, "one round: the ratio of the two medians");
            if (what == "train-step")
            {
                var phases = j["phases_s"]!.AsObject().Select(p => p.Key).ToList();
                CollectionAssert.IsSubsetOf(new[] { "prompts (tokenise, pad, copy)", "CF lookup + query generator", "LLM forward", "backward", "optimizer step" }, phases);
            }
        }
    }

    /// <summary>A tiny <c>cora bench score</c> on the shared slice (compact generator, one repeat of 4 rows) with more arguments.</summary>
    private static (int code, string stdout, string stderr) TinyBenchScore(params string[] more) =>
        Cli(new[] { "bench", "score", "--llm", Slice.LlmPath, "--data", Path.GetDirectoryName(Slice.TrainPath)!, "--generator", "compact",
            "--repeats", "1", "--rows", "4", "--batch", "2" }.Concat(more).ToArray());

    [TestMethod]
    [TestCategory(TestTiers.Slow)]                                   // measurement runs of cora bench
    public void BenchAlternatesRoundsAndReportsTheMedianRatio()
    {
        using var dir = TestPaths.Temp();
        var (code, stdout, err) = TinyBenchScore("--baseline", "NarrowHeadKernel", "--rounds", "3", "--json", dir["r.json"]);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "warm-up round (not counted)");
        Assert.IsTrue(stdout.IndexOf("warm-up round") < stdout.IndexOf("round 1/3: cora"), "the warm-up round comes first");
        StringAssert.Contains(stdout, "round 3/3: cora");
        StringAssert.Contains(stdout, "median of 3 alternating rounds");
        var j = JsonNode.Parse(File.ReadAllText(dir["r.json"]))!;
        var ratios = j["round_ratios"]!.AsArray().Select(x => (double)x!).OrderBy(x => x).ToArray();
        Assert.AreEqual(3, ratios.Length);
        Assert.AreEqual(3, (int)j["rounds"]!);
        Assert.AreEqual(ratios[1], (double)j["ratio"]!, 1e-12, "the median of the rounds' ratios");
        Assert.AreEqual("NarrowHeadKernel", (string)j["baseline"]!["plan"]!);
        (code, _, err) = Cli("bench", "score", "--rounds", "0");
        Assert.AreEqual(2, code);
        StringAssert.Contains(err, "--rounds must be at least 1");
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]                                   // measurement runs of cora bench
    public void BenchComparesTheGeneratorDtypesAndRecordsThem()
    {
        using var dir = TestPaths.Temp();
        var (code, stdout, err) = TinyBenchScore("--generator-dtype", "bf16", "--baseline", "generator-fp32", "--json", dir["r.json"]);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "generator products: bf16 (--generator-dtype bf16)");
        StringAssert.Contains(stdout, "ratio cora / generator in fp32");
        var j = JsonNode.Parse(File.ReadAllText(dir["r.json"]))!;
        Assert.AreEqual("bf16", (string)j["generator_dtype"]!);
        Assert.AreEqual("fp32", (string)j["baseline"]!["generator_dtype"]!);
        Assert.AreEqual("generator-fp32", (string)j["baseline"]!["plan"]!);
        (code, stdout, err) = TinyBenchScore("--generator-dtype", "bf16", "--baseline", "paper", "--json", dir["p.json"]);
        Assert.AreEqual(0, code, err);
        j = JsonNode.Parse(File.ReadAllText(dir["p.json"]))!;
        Assert.AreEqual("bf16", (string)j["generator_dtype"]!);
        Assert.AreEqual("fp32", (string)j["baseline"]!["generator_dtype"]!, "the paper's way computes the generator in fp32");
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]                                   // measurement runs of cora bench
    public void BenchTakesAGpusCodePathOnTheCpuAndComparesTheOptimizerLayouts()
    {
        using var dir = TestPaths.Temp();
        var (code, stdout, err) = Cli("bench", "train-step", "--llm", Slice.LlmPath, "--data", Path.GetDirectoryName(Slice.TrainPath)!, "--generator", "compact",
            "--repeats", "1", "--batch", "2", "--threads", "1", "--gpu-code-path", "--baseline", "per-parameter-optimizer", "--json", dir["r.json"]);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "code path: a GPU's (libtorch attention and dropout, no length groups, AdamW in libtorch operations)");
        StringAssert.Contains(stdout, "generator products: fp32 (--generator-dtype auto on a GPU)");
        StringAssert.Contains(stdout, "ratio cora / AdamW per parameter");
        var j = JsonNode.Parse(File.ReadAllText(dir["r.json"]))!;
        Assert.AreEqual("fp32", (string)j["generator_dtype"]!);
        Assert.AreEqual("per-parameter-optimizer", (string)j["baseline"]!["plan"]!);
        Assert.IsTrue((double)j["baseline"]!["median_s"]! > 0);
        (code, _, err) = TinyBenchScore("--baseline", "per-parameter-optimizer");
        Assert.AreEqual(2, code, "scoring has no optimizer");
        StringAssert.Contains(err, "per-parameter-optimizer");
    }

    [TestMethod]
    public void DoctorAndBenchPrintMeasuredFigures()
    {
        var (code, stdout, err) = Cli("doctor", "--seconds", "0.05");
        Assert.AreEqual(0, code, err);
        StringAssert.Matches(stdout, new System.Text.RegularExpressions.Regex(@"torchsharp +0\.107"));
        StringAssert.Matches(stdout, new System.Text.RegularExpressions.Regex(@"matmul cpu fp32 +[0-9.]+ GFLOP/s"));
        using var dir = TestPaths.Temp();
        (code, stdout, err) = Cli("bench", "train-step", "--shape", "tiny", "--batch", "2", "--tokens", "16", "--repeats", "1", "--json", dir["b.json"]);
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "cora train-step tiny 2x16 on cpu in fp32");
        var j = JsonNode.Parse(File.ReadAllText(dir["b.json"]))!;
        Assert.IsTrue((double)j["MedianSeconds"]! > 0 && (double)j["ItemsPerSecond"]! > 0);
        (code, stdout, err) = Cli("bench", "forward", "--shape", "tiny", "--batch", "2", "--tokens", "16", "--repeats", "1", "--llm-dtype", "bf16");
        Assert.AreEqual(0, code, err);
        StringAssert.Contains(stdout, "in bf16");
    }
}

/// <summary>Every option of every command that takes a number, given text that is not one: one line and exit 2, never a trace.</summary>
[TestClass]
public class CliUnparsableValueTests
{
    private static IEnumerable<(string path, System.CommandLine.Option option)> Options()
    {
        var (parse, _) = Cora.Cli.CoraCli.Parse(Array.Empty<string>(), new Cora.Cli.CliContext(TextWriter.Null, TextWriter.Null, default));
        IEnumerable<(string, System.CommandLine.Option)> Walk(System.CommandLine.Command c, string path) =>
            c.Options.Select(o => (path, o)).Concat(c.Subcommands.SelectMany(s => Walk(s, (path + " " + s.Name).Trim())));
        return Walk(parse.RootCommandResult.Command, "");
    }

    [TestMethod]
    public void ANumberOptionGivenTextFailsInOneLineWithExitTwo()
    {
        var numeric = new[] { typeof(int), typeof(long), typeof(double), typeof(float), typeof(int?), typeof(long?), typeof(double?), typeof(float?) };
        var checkedOptions = new List<string>();
        foreach (var (path, option) in Options().Where(x => numeric.Contains(x.option.ValueType) && x.path.Length > 0))
        {
            var err = new StringWriter();
            var args = path.Split(' ').Concat(new[] { option.Name, "abc" }).ToArray();
            int code = Cora.Cli.CoraCli.Run(args, TextWriter.Null, err);
            string text = err.ToString().TrimEnd();
            Assert.AreEqual(2, code, $"cora {string.Join(' ', args)}: {text}");
            Assert.IsFalse(text.Contains("   at "), $"cora {string.Join(' ', args)} printed a trace: {text}");
            StringAssert.Contains(text, "abc", $"cora {string.Join(' ', args)} names the value");
            checkedOptions.Add($"{path} {option.Name}");
        }
        CollectionAssert.Contains(checkedOptions, "train --lr");
        CollectionAssert.Contains(checkedOptions, "doctor --seconds");
        Assert.IsTrue(checkedOptions.Count >= 30, $"only {checkedOptions.Count} numeric options found");
    }
}
