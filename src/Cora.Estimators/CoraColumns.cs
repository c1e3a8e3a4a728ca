using Microsoft.ML.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>The input columns Cora reads and the output columns it adds.</summary>
internal sealed record CoraColumns(string UserId, string ItemId, string History, string? Prompt, string? Label, string? Title = null)
{
    public const string Score = "Score", Probability = "Probability", PredictedLabel = "PredictedLabel";

    private static readonly DataViewType[] IdTypes = { NumberDataViewType.Int32, NumberDataViewType.Int64, NumberDataViewType.UInt32, NumberDataViewType.Single, NumberDataViewType.Double };

    private static bool IsId(DataViewType t) => IdTypes.Contains(t) || t is KeyDataViewType { RawType: var r } && r == typeof(uint);
    private static bool IsHistory(DataViewType t) => t is TextDataViewType || t is VectorDataViewType v && IsId(v.ItemType);

    public static IEnumerable<SchemaShape.Column> OutputShape()
    {
        // SchemaShape.Column has no public constructor; build the shape from a schema.
        var b = new DataViewSchema.Builder();
        b.AddColumn(Score, NumberDataViewType.Single);
        b.AddColumn(Probability, NumberDataViewType.Single);
        b.AddColumn(PredictedLabel, BooleanDataViewType.Instance);
        return MlNetInternals.ShapeOf(b.ToSchema());
    }

    /// <summary>A column under the default history name may be absent: every row then has no liked history (none in the prompt).
    /// A name the user chose must be there (a typo is an error, not an empty history).</summary>
    public bool HistoryIsOptional => History == CoraTrainer.Defaults.HistoryColumnName;

    /// <summary>The history column of this schema, or null where it is optional and absent.</summary>
    public DataViewSchema.Column? HistoryIn(DataViewSchema s) => Prompt is not null ? null : s.GetColumnOrNull(History) is { } c ? c : HistoryIsOptional ? null : s[History];

    /// <summary>Checks a schema; throws naming the column that is missing or of the wrong type.</summary>
    public void Check(DataViewSchema schema, bool requireLabel) => Check(MlNetInternals.ShapeOf(schema), requireLabel);

    public void Check(SchemaShape schema, bool requireLabel)
    {
        SchemaShape.Column Find(string name, string role)
        {
            var found = schema.Where(x => x.Name == name).ToList();
            if (found.Count == 0)
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the {role} column '{name}' is missing from the input (columns: {string.Join(", ", schema.Select(x => x.Name))}). Set Options.{role}ColumnName to the right name.");
            return found[^1];
        }
        string Describe(SchemaShape.Column c) => c.Kind == SchemaShape.Column.VectorKind.Scalar ? c.ItemType.ToString() : $"vector of {c.ItemType}";
        foreach (var (name, role) in new[] { (UserId, "UserId"), (ItemId, "ItemId") })
        {
            var c = Find(name, role);
            if (c.Kind != SchemaShape.Column.VectorKind.Scalar || !IsId(c.ItemType))
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the {role} column '{name}' has type {Describe(c)}; expected a scalar Int32, Int64, UInt32, Single, Double or key.");
        }
        if (Prompt is not null)
        {
            var c = Find(Prompt, "Prompt");
            if (c.Kind != SchemaShape.Column.VectorKind.Scalar || c.ItemType is not TextDataViewType)
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the Prompt column '{Prompt}' has type {Describe(c)}; expected text.");
        }
        else if (!(HistoryIsOptional && schema.All(x => x.Name != History)))
        {
            var c = Find(History, "History");
            bool ok = c.Kind == SchemaShape.Column.VectorKind.Scalar ? c.ItemType is TextDataViewType : IsId(c.ItemType);
            if (!ok)
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the History column '{History}' has type {Describe(c)}; expected a vector of item ids or text of space-separated ids.");
        }
        if (Title is not null)
        {
            var c = Find(Title, "Title");
            if (c.Kind != SchemaShape.Column.VectorKind.Scalar || c.ItemType is not TextDataViewType)
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the Title column '{Title}' has type {Describe(c)}; expected text.");
        }
        if (requireLabel && Label is not null)
        {
            var c = Find(Label, "Label");
            if (c.Kind != SchemaShape.Column.VectorKind.Scalar || c.ItemType is not BooleanDataViewType)
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the Label column '{Label}' has type {Describe(c)}; expected Boolean.");
        }
    }

    public void Write(BinaryWriter w)
    {
        w.Write(UserId); w.Write(ItemId); w.Write(History);
        w.Write(Prompt is not null); if (Prompt is not null) w.Write(Prompt);
        w.Write(Title is not null); if (Title is not null) w.Write(Title);
    }

    /// <param name="r">The reader positioned at the columns.</param>
    /// <param name="withTitle">False for models written before the title column existed (format 1.1).</param>
    public static CoraColumns Read(BinaryReader r, bool withTitle)
    {
        string u = r.ReadString(), i = r.ReadString(), h = r.ReadString();
        string? p = r.ReadBoolean() ? r.ReadString() : null;
        string? t = withTitle && r.ReadBoolean() ? r.ReadString() : null;
        return new CoraColumns(u, i, h, p, null, t);
    }
}
