namespace Cora.Cli;

/// <summary>POST /score answer: one scored pair per requested pair, in the request's order.</summary>
public sealed record ScoreResponse(List<ScoredPair> Scores);
