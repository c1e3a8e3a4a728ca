namespace Cora.Cli;

/// <summary>One user-item pair to score; <c>history</c> (liked item ids, oldest first) defaults to what the model remembers.</summary>
public sealed record ScorePair(int? User, int? Item, int[]? History);
