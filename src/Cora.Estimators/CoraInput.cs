using Microsoft.ML.Cora.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>
/// An input row for Cora with the default column names: <c>mlContext.Data.LoadFromEnumerable(rows)</c> gives the IDataView that
/// <c>Recommendation().Trainers.Cora(...)</c> fits on and its transformer scores.
/// </summary>
public sealed class CoraInput
{
    /// <summary>User id.</summary>
    public int UserId { get; set; }
    /// <summary>Item id (its title comes from the item catalog, or from <see cref="Title"/> when the trainer's TitleColumnName is "Title").</summary>
    public int ItemId { get; set; }
    /// <summary>Did the user like the item? (Fit only.)</summary>
    public bool Label { get; set; }
    /// <summary>The user's earlier liked items, oldest first.</summary>
    [VectorType] public int[] History { get; set; } = Array.Empty<int>();
    /// <summary>Optional title of the item (used only when Options.TitleColumnName = "Title").</summary>
    public string Title { get; set; } = "";

    /// <summary>Rows from interactions read with <see cref="InteractionTsv"/> or built in code.</summary>
    public static IEnumerable<CoraInput> From(IEnumerable<Interaction> rows) =>
        rows.Select(r => new CoraInput { UserId = r.UserId, ItemId = r.ItemId, Label = r.Label, History = r.History });
}
