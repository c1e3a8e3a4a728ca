namespace Cora.Cli;

/// <summary>One ranked item of GET /recommend/{user}: its rank, id, title, the model's score and probability, and the CF score.</summary>
public sealed record RankedItem(int Rank, int Item, string Title, float Score, float Probability, float CfScore);
