using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.Data;

/// <summary>A converted data set in Cora's TSV layout.</summary>
/// <param name="Train">Training rows.</param>
/// <param name="Valid">Validation rows.</param>
/// <param name="Test">Test rows.</param>
/// <param name="Items">The item catalog.</param>
/// <param name="DroppedUntitled">Ratings left out because their item has no title (Cora's prompts need one): (rows, items).</param>
public sealed record SplitDataset(List<Interaction> Train, List<Interaction> Valid, List<Interaction> Test, ItemCatalog Items, (int Rows, int Items) DroppedUntitled = default)
{
    /// <summary>Writes train.tsv, valid.tsv, test.tsv and items.tsv into <paramref name="dir"/>.</summary>
    public void Write(string dir)
    {
        Directory.CreateDirectory(dir);
        InteractionTsv.Write(Path.Combine(dir, "train.tsv"), Train);
        InteractionTsv.Write(Path.Combine(dir, "valid.tsv"), Valid);
        InteractionTsv.Write(Path.Combine(dir, "test.tsv"), Test);
        Items.Write(Path.Combine(dir, "items.tsv"));
    }
}
