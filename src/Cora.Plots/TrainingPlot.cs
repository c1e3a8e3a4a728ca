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
