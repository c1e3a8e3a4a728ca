using Microsoft.ML.Cora.IO;
using Microsoft.ML.Cora.Training;
using ScottPlot;

namespace Microsoft.ML.Cora.Plots;

/// <summary>Training curves as a PNG (ScottPlot): loss (nats) on the left axis, validation AUC on the right, both against the step.</summary>
public static class TrainingPlot
{
    /// <summary>Colours of the two series (also what a test looks for in the image).</summary>
    public static readonly Color LossColor = new(214, 39, 40), AucColor = new(31, 119, 180);

    /// <summary>Writes the curves of <paramref name="result"/> to <paramref name="path"/> (atomically).</summary>
    public static void Save(TrainingResult result, string path, string title = "Cora training", int width = 900, int height = 500)
    {
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel("optimiser step");
        plot.Axes.Left.Label.Text = "training loss (BCE, nats)";
        plot.Axes.Right.Label.Text = "validation AUC";
        Series(plot, result.LossCurve, "training loss", LossColor, markerSize: 0, right: false);
        Series(plot, result.ValidationCurve, "validation AUC", AucColor, markerSize: 7, right: true);
        plot.ShowLegend(Alignment.UpperRight);
        IO.AtomicFile.Write(path, s => s.Write(plot.GetImageBytes(width, height, ImageFormat.Png)));
    }

    /// <summary>Colours of the runs in <see cref="SaveValidationCurves"/>, in order (the tenth run and later reuse them).</summary>
    public static readonly Color[] RunColors =
    {
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(127, 127, 127), new(188, 189, 34),
    };

    /// <summary>Writes the validation AUC of several runs against the optimiser step to <paramref name="path"/> (atomically), one
    /// line per run in <see cref="RunColors"/>' order, labelled in the legend: the curves of a sweep's finalists side by side.</summary>
    public static void SaveValidationCurves(IReadOnlyList<(string Label, List<(int step, double value)> Auc)> runs, string path,
        string title = "validation AUC", int width = 900, int height = 500)
    {
        ArgumentNullException.ThrowIfNull(runs);
        if (runs.Count == 0) throw new ArgumentException("No runs to draw.", nameof(runs));
        var plot = new Plot();
        plot.Title(title);
        plot.XLabel("optimiser step");
        plot.YLabel("validation AUC (selection sample)");
        for (int i = 0; i < runs.Count; i++)
        {
            var (label, auc) = runs[i];
            if (auc.Count == 0) throw new ArgumentException($"Run '{label}' has no validation points.", nameof(runs));
            Series(plot, auc, label, RunColors[i % RunColors.Length], markerSize: 5, right: false);
        }
        plot.ShowLegend(Alignment.LowerRight);
        IO.AtomicFile.Write(path, s => s.Write(plot.GetImageBytes(width, height, ImageFormat.Png)));
    }

    private static void Series(Plot plot, List<(int step, double value)> points, string legend, Color color, float markerSize, bool right)
    {
        if (points.Count == 0) return;
        var s = plot.Add.Scatter(points.Select(x => (double)x.step).ToArray(), points.Select(x => x.value).ToArray());
        s.LegendText = legend;
        s.Color = color;
        s.LineWidth = 2;
        s.MarkerSize = markerSize;
        if (right) s.Axes.YAxis = plot.Axes.Right;
    }
}
