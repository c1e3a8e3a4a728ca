using Microsoft.ML.Cora.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>Loads Cora's TSV files (the layout of CoLLM's MovieLens-1M split) for ML.NET.</summary>
public static class CoraData
{
    /// <summary>Interactions (<c>uid iid label timestamp not_cold his</c>) as an IDataView of <see cref="CoraInput"/>.</summary>
    public static IDataView LoadInteractions(this DataOperationsCatalog data, string path, int maxRows = 0) =>
        data.LoadFromEnumerable(CoraInput.From(InteractionTsv.Read(path, maxRows)).ToList());

    /// <summary>Item titles (<c>iid title</c>) as a dictionary for Options.ItemTitles.</summary>
    public static Dictionary<int, string> LoadItemTitles(string path) => ItemCatalog.Read(path).Titles.ToDictionary(kv => kv.Key, kv => kv.Value);
}
