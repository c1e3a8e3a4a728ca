using Microsoft.ML.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>The columns Cora adds, for <c>GetColumn</c>/<c>CreateEnumerable</c> and <c>PredictionEngine&lt;CoraInput, CoraPrediction&gt;</c>.</summary>
public sealed class CoraPrediction
{
    /// <summary>The "Yes" logit (MF: the CF logit).</summary>
    public float Score { get; set; }
    /// <summary>sigmoid(Score).</summary>
    public float Probability { get; set; }
    /// <summary>Probability &gt; 0.5.</summary>
    public bool PredictedLabel { get; set; }
}
