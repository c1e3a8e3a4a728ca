using System.Text.Json.Nodes;

namespace Cora.Tests;

/// <summary>
/// The sample notebooks run unmodified in dotnet-repl, a maintained .NET Interactive host, from Cora's packages packed from this
/// tree into <c>artifacts/packages</c> (as their first cell tells a user to), and the file-based samples beside them are generated
/// from their cells.
/// </summary>
[TestClass]
public class NotebookTests
{
    /// <summary>The .NET Interactive host the notebooks are run in (a .NET tool; installed once per machine into the temp folder).</summary>
    private const string ReplVersion = "0.3.259";

    public static IEnumerable<object[]> Notebooks() =>
        Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "samples", "notebooks"), "*.ipynb").OrderBy(x => x).Select(f => new object[] { Path.GetFileName(f) });

    private static readonly Lazy<string> Feed = new(() =>
    {
        string feed = Path.Combine(TestPaths.RepoRoot, "artifacts", "packages");
        PackageTests.Pack(feed);
        PackageTests.ForgetCachedPackages(PackageTests.Version);   // the notebooks must restore what was just packed
        return feed;
    });

    private static readonly Lazy<string> Repl = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), $"cora-tests-dotnet-repl-{ReplVersion}");
        string exe = Path.Combine(dir, "dotnet-repl");
        if (!File.Exists(exe))
        {
            var (code, output) = TestProcess.Run("dotnet", $"tool install dotnet-repl --version {ReplVersion} --tool-path \"{dir}\"", 300);
            Assert.AreEqual(0, code, "installing dotnet-repl: " + output);
        }
        return exe;
    });

    /// <summary>What each notebook prints when it worked (besides finishing without an error output).</summary>
    private static readonly Dictionary<string, string[]> Prints = new()
    {
        ["01-quickstart.ipynb"] = new[] { "train rows", "mf    AUC", "cora  AUC" },
        ["02-train-evaluate-movielens.ipynb"] = new[] { "overall AUC", "curves written to" },
        ["03-save-load-predict.ipynb"] = new[] { "probability" },
    };

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [DynamicData(nameof(Notebooks))]
    [Timeout(900_000)]
    public void NotebookRunsUnmodifiedInDotnetRepl(string notebook)
    {
        using var tmp = TestPaths.Temp();
        string dir = Path.Combine(TestPaths.RepoRoot, "samples", "notebooks"), output = tmp["out.ipynb"];
        var env = new Dictionary<string, string>
        {
            ["CORA_SHARED"] = TestPaths.SharedOrStandIn,                 // the shared folder, or the synthetic stand-in laid out like it
            ["RestoreAdditionalProjectSources"] = Feed.Value,            // what 'dotnet nuget add source' does for a user, for this run only
            ["CORA_CACHE_DIR"] = tmp["cache"],                           // natives prepared afresh (LibTorchRuntime's package-folder path)
        };
        var (code, log) = TestProcess.Run(Repl.Value, $"--run \"{Path.Combine(dir, notebook)}\" --working-dir \"{dir}\" --exit-after-run --output-format ipynb --output-path \"{output}\"", 840, dir, env);
        Assert.IsTrue(File.Exists(output), $"{notebook}: dotnet-repl wrote no notebook (exit {code}):\n{log}");
        var cells = JsonNode.Parse(File.ReadAllText(output))!["cells"]!.AsArray();
        var outputs = cells.SelectMany(c => c!["outputs"]?.AsArray() ?? new JsonArray()).Select(o => o!).ToList();
        var errors = outputs.Where(o => (string?)o["output_type"] == "error").Select(o => (string?)o["evalue"]).ToList();
        Assert.AreEqual(0, errors.Count, $"{notebook}: {string.Join("\n", errors)}");
        Assert.AreEqual(0, code, $"{notebook}: dotnet-repl exited with {code}:\n{log}");
        string printed = string.Concat(outputs.Where(o => (string?)o["output_type"] == "stream").SelectMany(o => o["text"]!.AsArray().Select(t => (string?)t)));
        foreach (var expected in Prints[notebook]) StringAssert.Contains(printed, expected, $"{notebook} printed:\n{printed}");
        Assert.IsFalse(printed.Contains("NaN  UAUC NaN  logloss NaN", StringComparison.Ordinal), printed);
    }

    /// <summary>The file-based app of a notebook: its code cells in order, without #r lines (the #:project lines replace them).</summary>
    internal static string SampleFromNotebook(string notebookPath)
    {
        var doc = JsonNode.Parse(File.ReadAllText(notebookPath))!;
        string name = Path.GetFileNameWithoutExtension(notebookPath);
        var cells = doc["cells"]!.AsArray().Where(c => (string?)c!["cell_type"] == "code")
            .Select(c => string.Join("\n", string.Concat(c!["source"]!.AsArray().Select(l => (string)l!)).Split('\n')
                .Where(l => !l.TrimStart().StartsWith("#r ") && !l.TrimStart().StartsWith("#!") && !l.TrimStart().StartsWith("#i ") && !IsPackageNote(l))).Trim())
            .Where(c => c.Length > 0).ToList();
        var sb = new System.Text.StringBuilder();
        sb.Append($"// File-based app version of samples/notebooks/{name}.ipynb, generated from the notebook's code cells (NotebookTests checks it; do not edit by hand).\n");
        sb.Append($"// Run from this folder:  dotnet run {name}.cs\n");
        sb.Append("#:project ../src/Cora.Estimators/Cora.Estimators.csproj\n");
        if (cells.Any(c => c.Contains("ScottPlot"))) sb.Append("#:project ../src/Cora.Plots/Cora.Plots.csproj\n");   // brings ScottPlot
        sb.Append("#:property CoraNeedsLibTorch=true\n#:property PublishAot=false\n\n");   // ML.NET generates code at run time: no AOT
        sb.Append(string.Join("\n\n", cells)).Append('\n');
        return sb.ToString();
    }

    /// <summary>The comment lines of a notebook's first cell about getting the packages (the file-based app references the projects).</summary>
    private static bool IsPackageNote(string line) =>
        line.TrimStart().StartsWith("//", StringComparison.Ordinal) && (line.Contains("packages", StringComparison.Ordinal) || line.Contains("repacking", StringComparison.Ordinal));

    [TestMethod]
    [DynamicData(nameof(Notebooks))]
    public void FileBasedSampleIsGeneratedFromTheNotebook(string notebook)
    {
        string nb = Path.Combine(TestPaths.RepoRoot, "samples", "notebooks", notebook);
        string sample = Path.Combine(TestPaths.RepoRoot, "samples", Path.ChangeExtension(notebook, ".cs"));
        string expected = SampleFromNotebook(nb);
        if (Environment.GetEnvironmentVariable("CORA_REGENERATE_SAMPLES") == "1") File.WriteAllText(sample, expected);
        Assert.AreEqual(expected, File.Exists(sample) ? File.ReadAllText(sample) : "",
            $"{sample} differs from its notebook; regenerate with CORA_REGENERATE_SAMPLES=1 dotnet test (filter FileBasedSample).");
    }
}
