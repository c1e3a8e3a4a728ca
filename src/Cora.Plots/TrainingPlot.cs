using Microsoft.ML.Cora.Formats;
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
        if (result.LossCurve.Count > 0)
        {
            var loss = plot.Add.Scatter(result.LossCurve.Select(x => (double)x.step).ToArray(), result.LossCurve.Select(x => x.loss).ToArray());
            loss.LegendText = "training loss";
            loss.Color = LossColor;
            loss.LineWidth = 2;
            loss.MarkerSize = 0;
        }
        if (result.ValidationCurve.Count > 0)
        {
            var auc = plot.Add.Scatter(result.ValidationCurve.Select(x => (double)x.step).ToArray(), result.ValidationCurve.Select(x => x.auc).ToArray());
            auc.LegendText = "validation AUC";
            auc.Color = AucColor;
            auc.LineWidth = 2;
            auc.MarkerSize = 7;
            auc.Axes.YAxis = plot.Axes.Right;
        }
        plot.ShowLegend(Alignment.UpperRight);
        Formats.AtomicFile.Write(path, s => s.Write(plot.GetImageBytes(width, height, ImageFormat.Png)));
    }
}
