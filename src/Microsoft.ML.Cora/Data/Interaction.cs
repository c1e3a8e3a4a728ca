using System.Globalization;
using System.Text;

namespace Microsoft.ML.Cora.Data;

/// <summary>One labelled interaction: did <see cref="UserId"/> like <see cref="ItemId"/>?</summary>
/// <param name="History">The user's earlier liked items, oldest first (0 = padding, ignored).</param>
/// <param name="NotCold">True when both the user and the item occur in the training split (a warm row).</param>
public sealed record Interaction(int UserId, int ItemId, bool Label, long Timestamp, bool NotCold, int[] History);

/// <summary>Checks on sets of interactions that must hold before any work starts.</summary>
internal static class InteractionChecks
{
    /// <summary>
    /// Refuses validation rows that cannot select a model: AUC needs at least one row of each label (with one label it is undefined,
    /// every validation reads NaN, and early stopping would keep whatever came first).
    /// </summary>
    /// <param name="rows">the validation rows a trainer will score</param>
    /// <param name="what">how the error names them, e.g. "the validation rows (a seeded half of --valid, capped at 400)"</param>
    public static void RequireBothLabels(IReadOnlyList<Interaction> rows, string what)
    {
        if (rows.Count == 0) throw new InvalidDataException($"{what}: no rows; model selection by validation AUC needs rows of both labels.");
        int positives = rows.Count(r => r.Label);
        if (positives == 0 || positives == rows.Count)
            throw new InvalidDataException($"{what}: all {rows.Count} rows have label {(positives == 0 ? 0 : 1)}; model selection by validation AUC needs rows of both labels. Give validation data with positive and negative rows.");
    }
}
