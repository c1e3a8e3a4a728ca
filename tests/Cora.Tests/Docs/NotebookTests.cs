using System.Text.Json.Nodes;
using Microsoft.CodeAnalysis.CSharp.Scripting;
using Microsoft.CodeAnalysis.Scripting;

namespace Cora.Tests;

/// <summary>
/// Runs every C# cell of the sample notebooks in order, in one Roslyn script state (what .NET Interactive's C#
/// kernel does). <c>#r</c> lines are replaced by the test's own references to the freshly built assemblies.
/// </summary>
[TestClass]
public class NotebookTests
{
    public static IEnumerable<object[]> Notebooks() =>
        Directory.GetFiles(Path.Combine(TestPaths.RepoRoot, "samples", "notebooks"), "*.ipynb").OrderBy(x => x).Select(f => new object[] { Path.GetFileName(f) });

    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [DynamicData(nameof(Notebooks))]
    [Timeout(600_000)]
    public async Task NotebookRunsCellByCell(string notebook)
    {
        // The notebooks read CORA_SHARED: the shared folder, or the synthetic stand-in laid out like it.
        string? before = Environment.GetEnvironmentVariable("CORA_SHARED");
        Environment.SetEnvironmentVariable("CORA_SHARED", TestPaths.SharedOrStandIn);
        try { await RunCells(notebook); }
        finally { Environment.SetEnvironmentVariable("CORA_SHARED", before); }
    }

    private static async Task RunCells(string notebook)
    {
        // Make sure the assemblies the notebooks use are loaded before collecting references.
        _ = typeof(Microsoft.ML.MLContext); _ = typeof(Microsoft.ML.Cora.CoraModel); _ = typeof(Microsoft.ML.Cora.Estimators.CoraTrainer); _ = typeof(Microsoft.ML.Cora.Plots.TrainingPlot);
        _ = typeof(Microsoft.ML.Data.TextLoader); _ = typeof(TorchSharp.torch);
        var refs = AppDomain.CurrentDomain.GetAssemblies().Where(a => !a.IsDynamic && !string.IsNullOrEmpty(a.Location));
        var options = ScriptOptions.Default.WithReferences(refs)
            .WithImports("System", "System.IO", "System.Linq", "System.Collections.Generic", "System.Threading.Tasks");
        var doc = JsonNode.Parse(File.ReadAllText(Path.Combine(TestPaths.RepoRoot, "samples", "notebooks", notebook)))!;
        ScriptState<object>? state = null;
        int index = 0, ran = 0;
        foreach (var cell in doc["cells"]!.AsArray())
        {
            index++;
            if ((string?)cell!["cell_type"] != "code") continue;
            var lines = cell["source"]!.AsArray().Select(l => (string)l!).SelectMany(l => l.Split('\n'));
            string code = string.Join("\n", lines.Where(l => !l.TrimStart().StartsWith("#r ") && !l.TrimStart().StartsWith("#!")));
            if (string.IsNullOrWhiteSpace(code.Replace("//", ""))) continue;
            try
            {
                state = state is null ? await CSharpScript.RunAsync(code, options) : await state.ContinueWithAsync(code, options);
                ran++;
            }
            catch (CompilationErrorException e)
            {
                Assert.Fail($"{notebook}, cell {index} does not compile:\n{string.Join("\n", e.Diagnostics)}");
            }
            catch (Exception e)
            {
                Assert.Fail($"{notebook}, cell {index} threw: {e}");
            }
        }
        Assert.IsTrue(ran >= 3, $"{notebook}: only {ran} code cells ran");
    }

    /// <summary>The file-based app of a notebook: its code cells in order, without #r lines (the #:project lines replace them).</summary>
    internal static string SampleFromNotebook(string notebookPath)
    {
        var doc = JsonNode.Parse(File.ReadAllText(notebookPath))!;
        string name = Path.GetFileNameWithoutExtension(notebookPath);
        var cells = doc["cells"]!.AsArray().Where(c => (string?)c!["cell_type"] == "code")
            .Select(c => string.Join("\n", string.Concat(c!["source"]!.AsArray().Select(l => (string)l!)).Split('\n')
                .Where(l => !l.TrimStart().StartsWith("#r ") && !l.TrimStart().StartsWith("#!") && !l.Contains("Build once first"))).Trim())
            .Where(c => c.Length > 0).ToList();
        var sb = new System.Text.StringBuilder();
        sb.Append($"// File-based app version of samples/notebooks/{name}.ipynb, generated from the notebook's code cells (NotebookTests checks it; do not edit by hand).\n");
        sb.Append($"// Run from this folder:  dotnet run {name}.cs\n");
        sb.Append("#:project ../src/Cora.Estimators/Cora.Estimators.csproj\n");
        if (cells.Any(c => c.Contains("Cora.Plots"))) sb.Append("#:project ../src/Cora.Plots/Cora.Plots.csproj\n");
        sb.Append("#:property CoraNeedsLibTorch=true\n#:property PublishAot=false\n\n");   // ML.NET generates code at run time: no AOT
        sb.Append(string.Join("\n\n", cells)).Append('\n');
        return sb.ToString();
    }

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
