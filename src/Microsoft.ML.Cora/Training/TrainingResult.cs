using System.Diagnostics;
using System.Text.Json;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Training;

/// <summary>What a training run did.</summary>
/// <param name="Steps">Optimiser steps taken (this process and any it resumed).</param>
/// <param name="BestValidationAuc">The best validation-sample AUC (its weights are the model's).</param>
/// <param name="BestStep">The step of those weights.</param>
/// <param name="LossCurve">Training loss by step.</param>
/// <param name="ValidationCurve">Validation-sample AUC by step.</param>
/// <param name="StoppedEarly">Whether patience or the time limit stopped it before the planned steps.</param>
/// <param name="Resumed">Whether the run continued from a checkpoint.</param>
public sealed record TrainingResult(int Steps, double BestValidationAuc, int BestStep, List<(int step, double loss)> LossCurve, List<(int step, double auc)> ValidationCurve, bool StoppedEarly, bool Resumed);
