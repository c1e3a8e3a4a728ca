using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Tests;

/// <summary>The README's ML.NET snippet, compiled and run here; the test fails if the README's copy drifts.</summary>
[TestClass]
public class ReadmeSnippetTests
{
    [TestMethod]
    [TestCategory(TestTiers.Slow)]
    [Timeout(600_000)]
    public void ReadmeSnippetCompilesRunsAndMatchesTheReadme()
    {
        // The README's relative paths (../shared/...) resolve from a working folder beside a link to the shared folder.
        using var tmp = TestPaths.Temp();
        Directory.CreateSymbolicLink(Path.Combine(tmp.Path, "shared"), TestPaths.SharedOrStandIn);   // or the synthetic stand-in
        Directory.CreateDirectory(Path.Combine(tmp.Path, "work"));
        string before = Directory.GetCurrentDirectory();
        Directory.SetCurrentDirectory(Path.Combine(tmp.Path, "work"));
        var console = new StringWriter();
        var originalOut = Console.Out;
        Console.SetOut(console);
        try
        {
            // README snippet begins
            var ml = new MLContext(seed: 1);
            ml.Log += (_, e) => { if (e.Source == "Cora") Console.WriteLine(e.RawMessage); };   // progress: MF epochs, steps, validations
            var data = "../shared/data/ml-1m-collm";
            IDataView train = ml.Data.LoadInteractions($"{data}/train.tsv", maxRows: 400);   // CoraInput rows: UserId, ItemId, Label, History
            IDataView test = ml.Data.LoadInteractions($"{data}/valid.tsv", maxRows: 200);
            var titles = CoraData.LoadItemTitles($"{data}/items.tsv");                        // item id -> title
            var trainer = ml.Recommendation().Trainers.Cora(
                llmPath: "../shared/models/stories260K/stories260K.bin",
                itemTitles: titles,
                generator: QueryGeneratorOptions.Compact);    // omit for QueryGeneratorOptions.Paper, CoRA's full size
            ITransformer model = trainer.Fit(train);
            IDataView scored = model.Transform(test);                      // + Score, Probability, PredictedLabel
            var auc = ml.BinaryClassification.Evaluate(scored).AreaUnderRocCurve;
            var full = ml.Recommendation().Evaluate(scored, model);        // AUC, UAUC, log loss (bits), warm/cold
            Console.WriteLine($"AUC {auc:F4}  UAUC {full.Overall.Uauc:F4}  warm AUC {full.Warm.Auc:F4}");
            var top = CoraTransformer.Find(model).Recommend(userId: 7, k: 5);   // CF retrieval, then CoRA re-ranks
            foreach (var r in top) Console.WriteLine($"{r.Rank}. {r.Title} ({r.Probability:F3})");
            ml.Model.Save(model, train.Schema, "model.zip");

            var fresh = new MLContext();
            ITransformer loaded = fresh.Model.LoadCora("model.zip", out var schema);   // = RegisterCora() + Load
            // README snippet ends

            Assert.AreEqual(auc, full.Overall.Auc, 1e-9, "Cora's AUC equals ML.NET's on the same scores");
            Assert.AreEqual(ml.BinaryClassification.Evaluate(scored).LogLoss, full.Overall.LogLoss, 1e-4, "log loss in ML.NET's unit (bits)");
            CollectionAssert.AreEqual(scored.GetColumn<float>("Score").ToArray(), loaded.Transform(test).GetColumn<float>("Score").ToArray());
            Assert.AreEqual(5, top.Count);
            CollectionAssert.AreEqual(new[] { 1, 2, 3, 4, 5 }, top.Select(r => r.Rank).ToArray());
            Assert.IsTrue(top.Zip(top.Skip(1)).All(p => p.First.Score >= p.Second.Score), "best first");
            string printed = console.ToString();
            StringAssert.Contains(printed, "Cora: training the MF stage");
            StringAssert.Contains(printed, "Cora step 1/");
        }
        finally
        {
            Console.SetOut(originalOut);
            Directory.SetCurrentDirectory(before);
        }

        // Every code line of the snippet above appears in the README, in order.
        var src = File.ReadAllLines(Path.Combine(TestPaths.RepoRoot, "tests", "Cora.Tests", "Docs", "ReadmeSnippetTests.cs"));
        var snippet = new List<string>();
        bool on = false;
        foreach (var l in src)
        {
            var t = l.Trim();
            if (t.StartsWith("// README snippet begins")) { on = true; continue; }
            if (t.StartsWith("// README snippet ends")) { on = false; continue; }
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
