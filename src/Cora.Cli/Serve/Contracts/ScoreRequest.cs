namespace Cora.Cli;

/// <summary>POST /score body: the pairs and an optional deadline in milliseconds.</summary>
public sealed record ScoreRequest(List<ScorePair>? Pairs, int? DeadlineMs);
