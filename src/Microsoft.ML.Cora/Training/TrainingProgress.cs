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
