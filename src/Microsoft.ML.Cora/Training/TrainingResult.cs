using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Training;

/// <summary>Progress of a training run (reported after each optimiser step).</summary>
/// <param name="Step">Steps done.</param>
/// <param name="TotalSteps">Steps planned.</param>
/// <param name="Loss">This step's training loss (BCE, nats).</param>
/// <param name="RowsPerSecond">Training rows per second so far.</param>
/// <param name="Eta">Time left at this pace.</param>
/// <param name="LastValidationAuc">The last validation AUC, or null before the first validation.</param>
public sealed record TrainingProgress(int Step, int TotalSteps, double Loss, double RowsPerSecond, TimeSpan Eta, double? LastValidationAuc)
{
    /// <summary>The progress line Cora prints.</summary>
    public override string ToString() =>
        $"Cora step {Step}/{TotalSteps}: loss {Loss:F4}, {RowsPerSecond:F1} rows/s, ETA {Eta:hh\\:mm\\:ss}, valid AUC {(LastValidationAuc is { } a ? a.ToString("F4") : "-")}";
}

/// <summary>What a training run did.</summary>
/// <param name="Steps">Optimiser steps taken (this process and any it resumed).</param>
/// <param name="BestValidationAuc">The best validation-sample AUC (its weights are the model's).</param>
/// <param name="BestStep">The step of those weights.</param>
/// <param name="LossCurve">Training loss by step.</param>
/// <param name="ValidationCurve">Validation-sample AUC by step.</param>
/// <param name="StoppedEarly">Whether patience ran out before the planned steps.</param>
/// <param name="Resumed">Whether the run continued from a checkpoint.</param>
public sealed record TrainingResult(int Steps, double BestValidationAuc, int BestStep, List<(int step, double loss)> LossCurve, List<(int step, double auc)> ValidationCurve, bool StoppedEarly, bool Resumed);
