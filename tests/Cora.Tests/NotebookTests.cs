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
    [DynamicData(nameof(Notebooks))]
    [Timeout(600_000)]
    public async Task NotebookRunsCellByCell(string notebook)
    {
        string shared = TestPaths.Shared();
        Environment.SetEnvironmentVariable("CORA_SHARED", shared);
        // Make sure the assemblies the notebooks use are loaded before collecting references.
        _ = typeof(Microsoft.ML.MLContext); _ = typeof(Microsoft.ML.Cora.CoraModel); _ = typeof(Microsoft.ML.Cora.Estimators.CoraTrainer); _ = typeof(Cora.Cli.CoraCli);
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
}
