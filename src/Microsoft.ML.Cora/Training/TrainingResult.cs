using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Training;

/// <summary>Progress of a training run (reported after each optimiser step).</summary>
public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double RowsPerSecond, TimeSpan Eta, double? LastValidationAuc)
{
    public override string ToString() =>
        $"Cora step {Step}/{TotalSteps}: loss {Loss:F4}, {RowsPerSecond:F1} rows/s, ETA {Eta:hh\\:mm\\:ss}, valid AUC {(LastValidationAuc is { } a ? a.ToString("F4") : "-")}";
}

public sealed record TrainingResult(int Steps, double BestValidationAuc, int BestStep, List<(int step, double loss)> LossCurve, List<(int step, double auc)> ValidationCurve, bool StoppedEarly, bool Resumed);
