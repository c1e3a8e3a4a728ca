namespace Microsoft.ML.Cora.Evaluation;

/// <summary>
/// AUC, UAUC and log loss, overall and split into warm and cold rows. <see cref="LogLoss"/> is in bits (log base 2), ML.NET's
/// unit (BinaryClassification.Evaluate reports the same number on the same scores); <see cref="LogLossNats"/> is the natural-log
/// value PyTorch's BCE loss (and the training loss printed by Cora) uses. UAUC: users with one row or one class are skipped
/// (<see cref="UsersSkipped"/>).
/// </summary>
public sealed record MetricSet(double Auc, double Uauc, double LogLossNats, int Rows, int UsersCounted, int UsersSkipped)
{
    /// <summary>Log loss in bits (ML.NET's unit).</summary>
    public double LogLoss => LogLossNats / Math.Log(2);
    /// <summary>AUC, UAUC, log loss in bits and rows on one line.</summary>
    public override string ToString() => $"AUC {Auc:F4}  UAUC {Uauc:F4}  logloss {LogLoss:F4} bits  rows {Rows}";
}
