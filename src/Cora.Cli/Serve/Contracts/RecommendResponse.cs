namespace Cora.Cli;

/// <summary>GET /recommend/{user}: the liked history, the top-K by the CF stage alone and after the model re-ranks its candidates;
/// <c>source</c> says what ranked the second list: "cora" (the model), or "cf" (the CF stage, after the deadline passed or for MF).</summary>
public sealed record RecommendResponse(int User, bool KnownUser, List<TitledItem> History, List<RankedItem> Cf, List<RankedItem> Cora, string Source);
