using Microsoft.ML.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>The input columns Cora reads and the output columns it adds.</summary>
internal sealed record CoraColumns(string UserId, string ItemId, string History, string? Prompt, string? Label, string? Title = null)
{
    public const string Score = "Score", Probability = "Probability", PredictedLabel = "PredictedLabel";

    private static readonly DataViewType[] IdTypes = { NumberDataViewType.Int32, NumberDataViewType.Int64, NumberDataViewType.UInt32, NumberDataViewType.Single, NumberDataViewType.Double };

    /// <summary>Ids given as text ("alice"): the user and item ids the model was fitted on, null where the ids are numbers or keys
    /// of numbers (saved with the model; see <see cref="TextIds"/>).</summary>
    public TextIds? UserTexts { get; init; }
    public TextIds? ItemTexts { get; init; }

    private static bool IsId(DataViewType t) => IdTypes.Contains(t) || t is TextDataViewType || t is KeyDataViewType { RawType: var r } && r == typeof(uint);

    /// <summary>Whether a column's ids are text to be numbered (<see cref="TextIds"/>): text, or keys whose values are not all
    /// integers (keys of integer text keep their integer ids, as models fitted before text ids did).</summary>
    public static bool HoldsTextIds(DataViewSchema.Column c) =>
        c.Type is TextDataViewType || c.Type is KeyDataViewType && CoraRows.KeyValuesAreNames(c);

    /// <summary>These columns with the text-id lists a fit of <paramref name="schema"/> needs (growing until the fit ends).</summary>
    public CoraColumns ForFit(DataViewSchema schema) => this with
    {
        UserTexts = HoldsTextIds(schema[UserId]) ? new TextIds { Growing = true } : null,
        ItemTexts = HoldsTextIds(schema[ItemId]) ? new TextIds { Growing = true } : null,
    };

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
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the {role} column '{name}' has type {Describe(c)}; expected a scalar Int32, Int64, UInt32, Single, Double, text or key.");
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
            bool ok = c.Kind == SchemaShape.Column.VectorKind.Scalar ? c.ItemType is TextDataViewType : IsId(c.ItemType);   // a vector of ids (text included)
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
            if (c.Kind != SchemaShape.Column.VectorKind.Scalar || !CoraRows.IsLabelType(c.ItemType))
                throw new ArgumentOutOfRangeException(nameof(schema), $"Cora: the Label column '{Label}' has type {Describe(c)}; expected {CoraRows.LabelTypes}.");
        }
    }

    public void Write(BinaryWriter w)
    {
        w.Write(UserId); w.Write(ItemId); w.Write(History);
        w.Write(Prompt is not null); if (Prompt is not null) w.Write(Prompt);
        w.Write(Title is not null); if (Title is not null) w.Write(Title);
        w.Write(UserTexts is not null); UserTexts?.Write(w);
        w.Write(ItemTexts is not null); ItemTexts?.Write(w);
    }

    /// <param name="r">The reader positioned at the columns.</param>
    /// <param name="withTitle">False for models written before the title column existed (format 1.1).</param>
    /// <param name="withTextIds">False for models written before text ids (formats 1.1 and 1.2).</param>
    public static CoraColumns Read(BinaryReader r, bool withTitle, bool withTextIds)
    {
        string u = r.ReadString(), i = r.ReadString(), h = r.ReadString();
        string? p = r.ReadBoolean() ? r.ReadString() : null;
        string? t = withTitle && r.ReadBoolean() ? r.ReadString() : null;
        TextIds? users = withTextIds && r.ReadBoolean() ? TextIds.Read(r, "user") : null;
        TextIds? items = withTextIds && r.ReadBoolean() ? TextIds.Read(r, "item") : null;
        return new CoraColumns(u, i, h, p, null, t) { UserTexts = users, ItemTexts = items };
    }
}
