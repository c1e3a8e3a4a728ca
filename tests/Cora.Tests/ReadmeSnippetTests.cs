using Cora.Cli;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Collaborative;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Tests;

/// <summary>The README's ML.NET snippet, compiled and run here; the test fails if the README's copy drifts.</summary>
[TestClass]
public class ReadmeSnippetTests
{
    [TestMethod]
    public void ReadmeSnippetCompilesRunsAndMatchesTheReadme()
    {
        var rows = InteractionRow.From(Slice.Train.Take(500)).ToList();
        var titles = Slice.Items.Titles.ToDictionary(kv => kv.Key, kv => kv.Value);
        using var tmp = TestPaths.Temp();
        Directory.SetCurrentDirectory(tmp.Path);
        string stories = TestPaths.Stories260K;
        Directory.CreateDirectory(Path.Combine(tmp.Path, "shared", "models", "stories260K"));
        string llmDir = Path.Combine("..", "shared", "models", "stories260K");
        Directory.CreateDirectory(Path.Combine(tmp.Path, "work"));
        Directory.SetCurrentDirectory(Path.Combine(tmp.Path, "work"));
        File.Copy(stories, Path.Combine(llmDir, "stories260K.bin"));
        File.Copy(Path.Combine(TestPaths.StoriesDir, "tok512.model"), Path.Combine(llmDir, "tok512.model"));

        // README snippet begins
        var ml = new MLContext(seed: 1);
        IDataView train = ml.Data.LoadFromEnumerable(rows);           // UserId, ItemId, Label (bool), History (int[])
        var trainer = ml.Recommendation().Trainers.Cora(
            llmPath: "../shared/models/stories260K/stories260K.bin",
            itemTitles: titles);                                        // IDictionary<int, string>
        // README snippet ends
        trainer = ml.Recommendation().Trainers.Cora(new CoraTrainer.Options
        {
            LlmPath = "../shared/models/stories260K/stories260K.bin", ItemTitles = titles, MaxSteps = 1,
            MatrixFactorization = new MatrixFactorizationOptions { EmbeddingDim = 16, MaxEpochs = 2 }, Model = Slice.SmallOptions(CoraMethod.Cora),
        });
        var test = ml.Data.LoadFromEnumerable(InteractionRow.From(Slice.Valid.Take(20)));
        // README snippet continues
        ITransformer model = trainer.Fit(train);
        IDataView scored = model.Transform(test);                     // + Score, Probability, PredictedLabel
        var auc = ml.BinaryClassification.Evaluate(scored).AreaUnderRocCurve;
        var full = ml.Recommendation().Evaluate(scored, (CoraTransformer)model);   // AUC, UAUC, warm/cold
        ml.Model.Save(model, train.Schema, "model.zip");

        var fresh = new MLContext();
        ITransformer loaded = fresh.Model.LoadCora("model.zip", out var schema);   // = RegisterCora() + Load
        // README snippet stops

        Assert.AreEqual(auc, full.Overall.Auc, 1e-9);
        CollectionAssert.AreEqual(scored.GetColumn<float>("Score").ToArray(), loaded.Transform(test).GetColumn<float>("Score").ToArray());
        Directory.SetCurrentDirectory(TestPaths.RepoRoot);

        // Every code line of the snippet above appears in the README, in order.
        var src = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "tests", "Cora.Tests", "ReadmeSnippetTests.cs"));
        var snippet = new List<string>();
        bool on = false;
        foreach (var l in src)
        {
            var t = l.Trim();
            if (t.StartsWith("// README snippet begins") || t.StartsWith("// README snippet continues")) { on = true; continue; }
            if (t.StartsWith("// README snippet ends") || t.StartsWith("// README snippet stops")) { on = false; continue; }
            if (on && t.Length > 0) snippet.Add(t);
        }
        var readme = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "README.md")).Select(l => l.Trim()).Where(l => l.Length > 0).ToList();
        int at = 0;
        foreach (var line in snippet)
        {
            int found = readme.IndexOf(line, at);
            Assert.IsTrue(found >= 0, $"README is missing (or reorders) the snippet line: {line}");
            at = found + 1;
        }
    }
}
