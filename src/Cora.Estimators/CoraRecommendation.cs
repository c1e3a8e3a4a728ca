
namespace Microsoft.ML.Cora.Estimators;

/// <summary>One recommended item: its rank (1 = best), id, title, the model's score and probability, and the CF score that retrieved it.</summary>
public sealed class CoraRecommendation
{
    public int UserId { get; set; }
    public int Rank { get; set; }
    public int ItemId { get; set; }
    public string Title { get; set; } = "";
    public float Score { get; set; }
    public float Probability { get; set; }
    public float CfScore { get; set; }
}
