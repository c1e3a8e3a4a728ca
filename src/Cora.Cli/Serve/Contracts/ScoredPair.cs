namespace Cora.Cli;

/// <summary>A scored pair; <c>source</c> is "cora" (the model) or "cf" (the CF score, after the deadline passed).</summary>
public sealed record ScoredPair(int User, int Item, float Score, float Probability, string Source);
