using System.Globalization;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Evaluation;
using Microsoft.ML.Cora.Methods;

namespace Cora.Tests;

/// <summary>
/// tools/sweep/title-signal.cs as written: the titles read by a pretrained sentence encoder, beside a model's own scores, on a small
/// split made here from the test slice (docs/results.md, "What the titles can add").
/// </summary>
[TestClass]
public class SweepTitleSignalTests
{
    [TestMethod]
    [TestCategory(TestTiers.Slow)]   // builds the tool as a file-based app and loads the 22M-parameter encoder
    public void TheToolCountsTheGroupsScoresTheModelAsTheLibraryDoesAndNamesAMissingFile()
    {
        using var tmp = TestPaths.Temp();
        var train = Slice.Train.Take(600).ToList();
        var valid = Slice.Valid.Take(240).ToList();
        string data = Path.Combine(tmp.Path, "split");
        Directory.CreateDirectory(data);
        InteractionTsv.Write(Path.Combine(data, "train.tsv"), train);
        InteractionTsv.Write(Path.Combine(data, "valid.tsv"), valid);
        var used = train.Concat(valid).Select(r => r.ItemId).ToHashSet();
        new ItemCatalog(Slice.Items.Titles.Where(kv => used.Contains(kv.Key))).Write(Path.Combine(data, "items.tsv"));

        float[] scores;
        using (var m = Slice.Model(CoraMethod.Cora))
        {
            scores = m.Score(valid);
            m.Save(tmp["model.zip"]);
        }
        var labels = valid.Select(r => r.Label).ToArray();
        var users = valid.Select(r => r.UserId).ToArray();
        var seen = train.Select(r => r.UserId).ToHashSet();
        int known = valid.Count(r => seen.Contains(r.UserId));
        int newItems = valid.Count(r => !train.Any(t => t.ItemId == r.ItemId));

        string tool = Path.Combine(TestPaths.RepoRoot, "tools", "sweep", "title-signal.cs");
        var env = new Dictionary<string, string> { ["DOTNET_NOLOGO"] = "1", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
        var (code, output) = TestProcess.Run("dotnet", $"run \"{tool}\" -- \"{data}\" \"{tmp["model.zip"]}\" --seed 7", 900, tmp.Path, env);
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, $"encoded {used.Count} titles (384 dimensions)");
        StringAssert.Contains(output, $"validation rows {valid.Count}: user seen in training {known}, user new {valid.Count - known}, item new {newItems}");
        StringAssert.Contains(output, "title regression (MiniLM, 10 epochs, seed 7): ");
        StringAssert.Contains(output, "liked-history titles x candidate title (rank 16, 10 epochs): ");
        // The model's line is the library's metrics over the library's scores.
        var (uauc, _, _) = Metrics.Uauc(scores, labels, users);
        StringAssert.Contains(output, string.Create(CultureInfo.InvariantCulture, $"{tmp["model.zip"]}: {Metrics.Auc(scores, labels):F4} / {uauc:F4}; "));
        foreach (string other in new[] { "the title regression", "the history x title form", "the item positive rate" })
            StringAssert.Contains(output, $"  mixed with {other}, w 0.3: ");

        (code, output) = TestProcess.Run("dotnet", $"run \"{tool}\" -- \"{data}\" \"{tmp["none.zip"]}\"", 300, tmp.Path, env);
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(output, $"{tmp["none.zip"]} is missing");
        // A file that is not a model: one line naming it, after the titles are read, not a stack trace.
        File.WriteAllText(tmp["text.zip"], "not a zip");
        (code, output) = TestProcess.Run("dotnet", $"run \"{tool}\" -- \"{data}\" \"{tmp["text.zip"]}\"", 600, tmp.Path, env);
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(output, $"tools/sweep/title-signal.cs: {tmp["text.zip"]}: ");
        Assert.IsFalse(output.Contains("   at "), output);
    }
}
