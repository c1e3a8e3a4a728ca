
namespace Microsoft.ML.Cora.Estimators;

/// <summary>One recommended item: its rank (1 = best), id, title, the model's score and probability, and the CF score that retrieved it.</summary>
public sealed class CoraRecommendation
{
    /// <summary>The user the list is for.</summary>
    public int UserId { get; set; }
    /// <summary>Position in the list, 1 = best (highest <see cref="Score"/>).</summary>
    public int Rank { get; set; }
    /// <summary>The recommended item.</summary>
    public int ItemId { get; set; }
    /// <summary>The item's title from the model's catalog.</summary>
    public string Title { get; set; } = "";
    /// <summary>The user's id as text, where the model was fitted on text ids (else null).</summary>
    public string? UserIdText { get; set; }
    /// <summary>The item's id as text, where the model was fitted on text ids (else null).</summary>
    public string? ItemIdText { get; set; }
    /// <summary>The model's score: the Yes-logit of the LLM for this user and item (higher = more likely liked).</summary>
    public float Score { get; set; }
    /// <summary>sigmoid(<see cref="Score"/>), the predicted probability that the user likes the item.</summary>
    public float Probability { get; set; }
    /// <summary>The CF model's score that put the item among the candidates the LLM re-ranked.</summary>
    public float CfScore { get; set; }
}
