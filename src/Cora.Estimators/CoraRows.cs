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

/// <summary>The columns Cora adds, for <c>GetColumn</c>/<c>CreateEnumerable</c> and <c>PredictionEngine&lt;CoraInput, CoraPrediction&gt;</c>.</summary>
public sealed class CoraPrediction
{
    /// <summary>The "Yes" logit (MF: the CF logit).</summary>
    public float Score { get; set; }
    /// <summary>sigmoid(Score).</summary>
    public float Probability { get; set; }
    /// <summary>Probability &gt; 0.5.</summary>
    public bool PredictedLabel { get; set; }
}

/// <summary>Loads Cora's TSV files (the layout of CoLLM's MovieLens-1M split) for ML.NET.</summary>
public static class CoraData
{
    /// <summary>Interactions (<c>uid iid label timestamp not_cold his</c>) as an IDataView of <see cref="CoraInput"/>.</summary>
    public static IDataView LoadInteractions(this DataOperationsCatalog data, string path, int maxRows = 0) =>
        data.LoadFromEnumerable(CoraInput.From(InteractionTsv.Read(path, maxRows)).ToList());

    /// <summary>Item titles (<c>iid title</c>) as a dictionary for Options.ItemTitles.</summary>
    public static Dictionary<int, string> LoadItemTitles(string path) => ItemCatalog.Read(path).Titles.ToDictionary(kv => kv.Key, kv => kv.Value);
}
