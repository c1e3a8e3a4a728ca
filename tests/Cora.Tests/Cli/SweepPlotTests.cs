using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Plots;
using Microsoft.ML.Cora.Training;

namespace Cora.Tests;

/// <summary>The sweep's finalists plot: validation AUC of several runs in one PNG, from the library and from tools/sweep/plot.cs.</summary>
[TestClass]
public class SweepPlotTests
{
    [TestMethod]
    public void EachRunIsDrawnInItsOwnColourAndAnEmptyRunIsNamed()
    {
        using var tmp = TestPaths.Temp();
        string png = tmp["curves.png"];
        TrainingPlot.SaveValidationCurves(new List<(string, List<(int, double)>)>
        {
            ("first", new() { (250, 0.68), (500, 0.69), (750, 0.70) }),
            ("second", new() { (250, 0.66), (500, 0.71) }),
        }, png);
        Assert.IsTrue(PngPixels.Count(png, TrainingPlot.RunColors[0]) > 20, "the first run drawn in the first colour");
        Assert.IsTrue(PngPixels.Count(png, TrainingPlot.RunColors[1]) > 20, "the second run in the second");
        Assert.AreEqual(0, PngPixels.Count(png, TrainingPlot.RunColors[2]), "and no third");

        var e = Assert.ThrowsExactly<ArgumentException>(() => TrainingPlot.SaveValidationCurves(
            new List<(string, List<(int, double)>)> { ("first", new() { (1, 0.5) }), ("idle", new()) }, tmp["bad.png"]));
        StringAssert.Contains(e.Message, "Run 'idle' has no validation points");
        Assert.IsFalse(File.Exists(tmp["bad.png"]), "nothing written");
        Assert.ThrowsExactly<ArgumentException>(() => TrainingPlot.SaveValidationCurves(new List<(string, List<(int, double)>)>(), tmp["none.png"]));
    }

    [TestMethod]
    [TestCategory(TestTiers.Slow)]   // builds tools/sweep/plot.cs as a file-based app
    public void TheToolDrawsTheCurvesRunsCheckpointedAndNamesARunThatIsNotOne()
    {
        using var tmp = TestPaths.Temp();
        var rows = Slice.Train.Skip(500).Take(24).ToList();
        var valid = Slice.Valid.Skip(100).Take(16).ToList();
        var curves = new List<List<(int, double)>>();
        foreach (string run in new[] { "run-a", "run-b" })
        {
            using var m = Slice.Model(CoraMethod.Cora);
            var r = TrainingLoop.Train(m, rows, valid, new TrainingOptions
            {
                BatchSize = 4, MaxSteps = 4, ValidateEvery = 2, Patience = 0, CheckpointDirectory = Path.Combine(tmp.Path, run, "ckpt"),
                Seed = run == "run-a" ? 1 : 2,
            });
            Assert.AreEqual(2, r.ValidationCurve.Count, "validated at steps 2 and 4");
            curves.Add(r.ValidationCurve);
        }
        var env = new Dictionary<string, string> { ["CORA_SWEEP_DIR"] = tmp.Path, ["DOTNET_NOLOGO"] = "1", ["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1" };
        string tool = Path.Combine(TestPaths.RepoRoot, "tools", "sweep", "plot.cs"), png = tmp["finalists.png"];

        var (code, output) = TestProcess.Run("dotnet", $"run \"{tool}\" -- \"{png}\" run-a run-b", 600, tmp.Path, env);
        Assert.AreEqual(0, code, output);
        StringAssert.Contains(output, "2 runs");
        foreach (var (run, curve) in new[] { "run-a", "run-b" }.Zip(curves))
        {
            var best = curve.MaxBy(p => p.Item2);
            StringAssert.Contains(output, FormattableString.Invariant($"{run}: 2 validations, steps 2-4, best AUC {best.Item2:F4} at step {best.Item1}"),
                "the tool reads the curve the training recorded");
        }
        Assert.IsTrue(PngPixels.Count(png, TrainingPlot.RunColors[0]) > 10 && PngPixels.Count(png, TrainingPlot.RunColors[1]) > 10, "both runs drawn");

        File.Delete(png);
        (code, output) = TestProcess.Run("dotnet", $"run \"{tool}\" -- \"{png}\" run-a run-c", 600, tmp.Path, env);
        Assert.AreEqual(2, code, output);
        StringAssert.Contains(output, Path.Combine(tmp.Path, "run-c", "ckpt", "state.json") + " is missing: 'run-c' is not a run of tools/sweep/run.sh");
        Assert.IsFalse(File.Exists(png), "nothing written when a run is not one");
    }
}
