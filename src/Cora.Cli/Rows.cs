using Microsoft.ML.Cora.Data;
using Microsoft.ML.Data;

namespace Cora.Cli;

/// <summary>The IDataView row the CLI feeds to the ML.NET surface.</summary>
public sealed class InteractionRow
{
    public int UserId { get; set; }
    public int ItemId { get; set; }
    public bool Label { get; set; }
    [VectorType] public int[] History { get; set; } = Array.Empty<int>();

    public static IEnumerable<InteractionRow> From(IEnumerable<Interaction> rows) =>
        rows.Select(r => new InteractionRow { UserId = r.UserId, ItemId = r.ItemId, Label = r.Label, History = r.History });
}

public sealed class ScoredRow
{
    public float Score { get; set; }
    public float Probability { get; set; }
}
