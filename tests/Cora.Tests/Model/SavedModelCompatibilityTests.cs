using Microsoft.ML.Data;
using System.Globalization;
using Microsoft.ML;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Estimators;

namespace Cora.Tests;

/// <summary>
/// A model saved by an earlier version (commit 5c542ee, model format 3, LLM embedded; a CoRA model trained six steps on the
/// synthetic data) loads in this version and scores as it did then.
/// </summary>
[TestClass]
public class SavedModelCompatibilityTests
{
    private static string Fixture(string name) => Path.Combine(AppContext.BaseDirectory, "Fixtures", name);

    [TestMethod]
    public void AModelSavedByThePreviousVersionLoadsAndScoresAsItDid()
    {
        var lines = File.ReadAllLines(Fixture("cora-format3.scores.tsv"));
        var rows = lines.Select(l => l.Split('\t')).Select(f => new Interaction(int.Parse(f[0], CultureInfo.InvariantCulture), int.Parse(f[1], CultureInfo.InvariantCulture), false, 0, true,
            f[2].Length == 0 ? Array.Empty<int>() : f[2].Split(' ').Select(x => int.Parse(x, CultureInfo.InvariantCulture)).ToArray())).ToList();
        var expected = lines.Select(l => float.Parse(l.Split('\t')[3], CultureInfo.InvariantCulture)).ToArray();
        Assert.AreEqual(24, rows.Count);
        var ml = new MLContext(1);
        // fp32 generator products: the recorded scores were computed in fp32 (auto may pick bf16 on another CPU).
        using var t = CoraTransformer.Find(ml.Model.LoadCora(Fixture("cora-format3.mlnet.zip"), out _, generatorDtype: "fp32"));
        Assert.AreEqual(Microsoft.ML.Cora.Methods.CoraMethod.Cora, t.Model.Options.Method);
        var direct = t.Model.Score(rows);
        var viaMlNet = t.Transform(ml.Data.LoadFromEnumerable(CoraInput.From(rows))).GetColumn<float>("Score").ToArray();
        for (int i = 0; i < rows.Count; i++)
        {
            // Within float32 rounding of another CPU's kernels, far below the spread of the scores themselves.
            Assert.AreEqual(expected[i], direct[i], 1e-4 * Math.Max(1, Math.Abs(expected[i])), $"row {i}");
            Assert.AreEqual(expected[i], viaMlNet[i], 1e-4 * Math.Max(1, Math.Abs(expected[i])), $"row {i} through Transform");
        }
        Assert.IsTrue(expected.Max() - expected.Min() > 1e-3, "the recorded scores differ between rows, so the check can fail");
    }
}
