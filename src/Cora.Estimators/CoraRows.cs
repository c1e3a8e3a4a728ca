using Microsoft.ML.Cora.Data;
using Microsoft.ML.Data;

namespace Microsoft.ML.Cora.Estimators;

/// <summary>Reads interactions out of IDataView rows.</summary>
internal sealed class CoraRows
{
    private readonly ValueGetter<int> _user, _item;
    private readonly ValueGetter<bool>? _label;
    private readonly ValueGetter<int[]>? _history;
    private readonly ValueGetter<ReadOnlyMemory<char>>? _prompt, _title;

    public CoraRows(DataViewRow row, CoraColumns c, bool withLabel)
    {
        var s = row.Schema;
        if (c.Title is not null) _title = row.GetGetter<ReadOnlyMemory<char>>(s[c.Title]);
        _user = IdGetter(row, s[c.UserId], c.UserTexts, keyZeroIsUnknown: true);
        _item = IdGetter(row, s[c.ItemId], c.ItemTexts);
        if (withLabel && c.Label is not null) _label = LabelGetter(row, s[c.Label]);
        if (c.Prompt is not null) _prompt = row.GetGetter<ReadOnlyMemory<char>>(s[c.Prompt]);
        else if (c.HistoryIn(s) is { } h) _history = HistoryGetter(row, h, c.ItemTexts);
    }

    public static IEnumerable<DataViewSchema.Column> Needed(DataViewSchema s, CoraColumns c, bool withLabel)
    {
        yield return s[c.UserId];
        yield return s[c.ItemId];
        if (RawBehind(s, s[c.UserId]) is { } ru) yield return ru;
        if (RawBehind(s, s[c.ItemId]) is { } ri) yield return ri;
        if (c.Prompt is not null) yield return s[c.Prompt]; else if (c.HistoryIn(s) is { } h) yield return h;
        if (withLabel && c.Label is not null) yield return s[c.Label];
        if (c.Title is not null) yield return s[c.Title];
    }

    /// <summary>The target item's title in this row, when a title column is given and the cell is not empty.</summary>
    public string? ReadTitle()
    {
        if (_title is null) return null;
        ReadOnlyMemory<char> t = default;
        _title(ref t);
        return t.Span.Trim().Length == 0 ? null : t.ToString();
    }

    /// <summary>Rows read from a data view, with ready prompts and titles when those columns are given.</summary>
    public sealed record Data(List<Interaction> Rows, List<string>? Prompts, Dictionary<int, string> Titles);

    public (Interaction row, string? prompt) Read()
    {
        int u = 0, i = 0; bool label = false; int[] his = Array.Empty<int>(); ReadOnlyMemory<char> p = default;
        _user(ref u); _item(ref i);
        _label?.Invoke(ref label);
        _history?.Invoke(ref his);
        _prompt?.Invoke(ref p);
        return (new Interaction(u, i, label, 0, true, his), _prompt is null ? null : p.ToString());
    }

    public static Data ReadAll(IDataView data, CoraColumns c, bool withLabel, Action check)
    {
        var rows = new List<Interaction>();
        List<string>? prompts = c.Prompt is null ? null : new();
        var titles = new Dictionary<int, string>();
        using var cursor = data.GetRowCursor(Needed(data.Schema, c, withLabel));
        var reader = new CoraRows(cursor, c, withLabel);
        while (cursor.MoveNext())
        {
            if ((rows.Count & 1023) == 0) check();
            var (r, p) = reader.Read();
            rows.Add(r);
            prompts?.Add(p!);
            if (reader.ReadTitle() is { } t) titles[r.ItemId] = t;
        }
        return new Data(rows, prompts, titles);
    }

    public static ItemCatalog ReadCatalog(IDataView items, string idColumn, string titleColumn, TextIds? itemTexts)
    {
        var s = items.Schema;
        var idCol = s.GetColumnOrNull(idColumn) ?? throw new ArgumentOutOfRangeException(nameof(items), $"Cora: the item catalog has no column '{idColumn}' (set Options.ItemsIdColumnName).");
        var titleCol = s.GetColumnOrNull(titleColumn) ?? throw new ArgumentOutOfRangeException(nameof(items), $"Cora: the item catalog has no column '{titleColumn}' (set Options.ItemsTitleColumnName).");
        if (titleCol.Type is not TextDataViewType) throw new ArgumentOutOfRangeException(nameof(items), $"Cora: the item title column '{titleColumn}' must be text.");
        var d = new Dictionary<int, string>();
        using var cur = items.GetRowCursor(new[] { idCol, titleCol });
        var id = IdGetter(cur, idCol, itemTexts);
        var title = cur.GetGetter<ReadOnlyMemory<char>>(titleCol);
        int v = 0; ReadOnlyMemory<char> t = default;
        while (cur.MoveNext())
        {
            id(ref v); title(ref t);
            if (!d.TryAdd(v, t.ToString())) throw new InvalidDataException($"Cora: item {v} appears twice in the item catalog.");
        }
        return new ItemCatalog(d);
    }

    private static int ToId(double v, string col)
    {
        if (v < 0 || v > int.MaxValue || v != Math.Floor(v)) throw new InvalidDataException($"Cora: column '{col}' holds {v}, which is not a non-negative integer id.");
        return (int)v;
    }

    /// <summary>Whether a column of this type can be a label (Boolean, Single or Double), and what to say when it cannot.</summary>
    internal static bool IsLabelType(DataViewType t) => t is BooleanDataViewType || t == NumberDataViewType.Single || t == NumberDataViewType.Double;
    internal const string LabelTypes = "Boolean, or Single/Double holding 0 and 1";

    /// <summary>A label as a Boolean: a Boolean column as is, a Single or Double column holding 0 or 1 (anything else is refused).</summary>
    internal static ValueGetter<bool> LabelGetter(DataViewRow row, DataViewSchema.Column col)
    {
        string n = col.Name;
        bool Of(double x, string shown) => x == 1 ? true : x == 0 ? false
            : throw new InvalidDataException($"Cora: the Label column '{n}' holds {shown}; a numeric label is 0 (not liked) or 1 (liked).");
        if (col.Type is BooleanDataViewType) return row.GetGetter<bool>(col);
        if (col.Type == NumberDataViewType.Single) { var g = row.GetGetter<float>(col); float x = 0; return (ref bool v) => { g(ref x); v = Of(x, x.ToString(System.Globalization.CultureInfo.InvariantCulture)); }; }
        if (col.Type == NumberDataViewType.Double) { var g = row.GetGetter<double>(col); double x = 0; return (ref bool v) => { g(ref x); v = Of(x, x.ToString(System.Globalization.CultureInfo.InvariantCulture)); }; }
        throw new ArgumentOutOfRangeException(nameof(col), $"Cora: the Label column '{n}' has type {col.Type}; expected {LabelTypes}.");
    }

    /// <summary>The id a user whose key is 0 (a value the key map did not see) is scored under: one unknown, cold user.</summary>
    internal const int UnknownUser = int.MaxValue;

    /// <param name="texts">The model's text ids, where the column holds text (or keys of text); null for numeric ids.</param>
    /// <param name="keyZeroIsUnknown">Key 0 (missing) reads as <see cref="UnknownUser"/> instead of an error (user columns).</param>
    internal static ValueGetter<int> IdGetter(DataViewRow row, DataViewSchema.Column col, TextIds? texts = null, bool keyZeroIsUnknown = false)
    {
        var t = col.Type;
        string n = col.Name;
        if (t is TextDataViewType)
        {
            if (texts is null) throw new ArgumentOutOfRangeException(nameof(col), $"Cora: column '{n}' holds text ids, but this model was fitted on numeric ids. Give the column the type it was fitted with.");
            var g = row.GetGetter<ReadOnlyMemory<char>>(col); ReadOnlyMemory<char> x = default;
            return (ref int v) => { g(ref x); v = texts.Of(x.Span, n); };
        }
        if (t == NumberDataViewType.Int32) { var g = row.GetGetter<int>(col); return (ref int v) => { g(ref v); if (v < 0) throw new InvalidDataException($"Cora: column '{n}' holds {v}, not a non-negative id."); }; }
        if (t == NumberDataViewType.Int64) { var g = row.GetGetter<long>(col); long x = 0; return (ref int v) => { g(ref x); v = ToId(x, n); }; }
        if (t is KeyDataViewType)
        {
            var ids = KeyIds(col, texts);
            var g = row.GetGetter<uint>(col); uint x = 0;
            // Key 0 is a value the key map did not see. Where the map ran in place (MapValueToKey("ItemId")), the original column
            // is still in the schema, hidden: read the id there, so the row is scored as the raw id would be (cold if unseen).
            var raw = RawBehind(row.Schema, col) is { } rc && row.IsColumnActive(rc) ? IdGetter(row, rc, texts, keyZeroIsUnknown) : null;
            return (ref int v) =>
            {
                g(ref x);
                if (x != 0) v = FromKey(ids, x, n);
                else if (raw is not null) raw(ref v);
                else v = keyZeroIsUnknown ? UnknownUser : FromKey(ids, x, n);
            };
        }
        if (t == NumberDataViewType.UInt32) { var g = row.GetGetter<uint>(col); uint x = 0; return (ref int v) => { g(ref x); v = ToId(x, n); }; }
        if (t == NumberDataViewType.Single) { var g = row.GetGetter<float>(col); float x = 0; return (ref int v) => { g(ref x); v = ToId(x, n); }; }
        if (t == NumberDataViewType.Double) { var g = row.GetGetter<double>(col); double x = 0; return (ref int v) => { g(ref x); v = ToId(x, n); }; }
        throw new ArgumentOutOfRangeException(nameof(col), $"Cora: column '{n}' has unsupported type {t}.");
    }

    /// <summary>
    /// The original id of each key of a key-typed column (index = key; key 0 = missing), read from its KeyValues annotation
    /// (what MapValueToKey records). Cora works on the original ids (they index the titles and the CF model), never on key indices.
    /// </summary>
    /// <summary>Whether a key column's values are names rather than integer ids (some value is text that is not an integer).</summary>
    internal static bool KeyValuesAreNames(DataViewSchema.Column col)
    {
        if (col.Annotations.Schema.GetColumnOrNull("KeyValues") is not { } kv) return false;
        var type = kv.Type is VectorDataViewType v ? v.ItemType : kv.Type;
        if (type is not TextDataViewType) return false;
        VBuffer<ReadOnlyMemory<char>> values = default;
        col.Annotations.GetValue("KeyValues", ref values);
        return values.DenseValues().Any(x => !int.TryParse(x.Span, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var id) || id < 0);
    }

    internal static int[] KeyIds(DataViewSchema.Column col, TextIds? texts = null)
    {
        var kv = col.Annotations.Schema.GetColumnOrNull("KeyValues")
            ?? throw new ArgumentOutOfRangeException(nameof(col), $"Cora: the column '{col.Name}' holds keys without key values, so the original item/user ids cannot be recovered. " +
                $"Give Cora the raw ids (put MapValueToKey after Cora, or add MapKeyToValue(\"{col.Name}\") before it).");
        int[] Convert<T>(Func<T, string, int> conv)
        {
            VBuffer<T> values = default;
            col.Annotations.GetValue("KeyValues", ref values);
            var dense = values.DenseValues().ToArray();
            var ids = new int[dense.Length + 1];
            ids[0] = -1;
            for (int i = 0; i < dense.Length; i++) ids[i + 1] = conv(dense[i], col.Name);
            return ids;
        }
        var type = kv.Type is VectorDataViewType v ? v.ItemType : kv.Type;
        if (type == NumberDataViewType.Int32) return Convert<int>((x, c) => ToId(x, c));
        if (type == NumberDataViewType.Int64) return Convert<long>((x, c) => ToId(x, c));
        if (type == NumberDataViewType.UInt32) return Convert<uint>((x, c) => ToId(x, c));
        if (type == NumberDataViewType.Single) return Convert<float>((x, c) => ToId(x, c));
        if (type == NumberDataViewType.Double) return Convert<double>((x, c) => ToId(x, c));
        if (type is TextDataViewType && texts is not null)
            return Convert<ReadOnlyMemory<char>>((x, c) => texts.Of(x.Span, c));
        if (type is TextDataViewType)
            return Convert<ReadOnlyMemory<char>>((x, c) => int.TryParse(x.Span, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var id) && id >= 0 ? id
                : throw new InvalidDataException($"Cora: the key values of column '{c}' include '{x}', which is not an integer id."));
        throw new ArgumentOutOfRangeException(nameof(col), $"Cora: the key values of column '{col.Name}' have type {type}; expected integer ids.");
    }

    private static int FromKey(int[] ids, uint key, string col)
    {
        if (key == 0 || key >= ids.Length)
            throw new InvalidDataException($"Cora: column '{col}' holds key {key}, a value the key map did not see when it was fitted, and the original id is not in the data. " +
                $"Map the ids in place (MapValueToKey(\"{col}\"), which keeps the original column hidden for Cora to read), or give Cora the raw ids.");
        return ids[key];
    }

    /// <summary>
    /// The column a key column replaced: an in-place MapValueToKey keeps the original, hidden, under the same name. Null where
    /// the key column is not a key, or was made under a new name.
    /// </summary>
    internal static DataViewSchema.Column? RawBehind(DataViewSchema s, DataViewSchema.Column key)
    {
        if (key.Type is not KeyDataViewType) return null;
        for (int i = key.Index - 1; i >= 0; i--)
            if (s[i].Name == key.Name) return s[i].IsHidden && s[i].Type is not VectorDataViewType ? s[i] : null;
        return null;
    }

    private static ValueGetter<int[]> HistoryGetter(DataViewRow row, DataViewSchema.Column col, TextIds? itemTexts)
    {
        string n = col.Name;
        if (col.Type is TextDataViewType)
        {
            // Space-separated ids: integers, or the item names of a model fitted on text ids (names without spaces).
            var g = row.GetGetter<ReadOnlyMemory<char>>(col);
            ReadOnlyMemory<char> text = default;
            return (ref int[] v) =>
            {
                g(ref text);
                var parts = text.ToString().Split(' ', StringSplitOptions.RemoveEmptyEntries);
                v = itemTexts is not null ? parts.Select(p => itemTexts.Of(p, n)).ToArray()
                    : parts.Select(p => int.TryParse(p, out var x) && x >= 0 ? x : throw new InvalidDataException($"Cora: column '{n}': '{p}' is not an item id.")).Where(x => x != 0).ToArray();
            };
        }
        var item = ((VectorDataViewType)col.Type).ItemType;
        if (item is TextDataViewType)
        {
            if (itemTexts is null) throw new ArgumentOutOfRangeException(nameof(col), $"Cora: the History column '{n}' holds text ids, but the item ids are numbers; give both the same type.");
            var g = row.GetGetter<VBuffer<ReadOnlyMemory<char>>>(col);
            VBuffer<ReadOnlyMemory<char>> buf = default;
            return (ref int[] v) =>
            {
                g(ref buf);
                v = buf.DenseValues().Where(x => !x.Span.Trim().IsEmpty).Select(x => itemTexts.Of(x.Span, n)).ToArray();
            };
        }
        ValueGetter<int[]> Make<T>(Func<T, double> conv)
        {
            var g = row.GetGetter<VBuffer<T>>(col);
            VBuffer<T> buf = default;
            return (ref int[] v) =>
            {
                g(ref buf);
                var dense = buf.DenseValues().ToArray();
                v = dense.Select(x => ToId(conv(x), n)).Where(x => x != 0).ToArray();
            };
        }
        if (item == NumberDataViewType.Int32) return Make<int>(x => x);
        if (item == NumberDataViewType.Int64) return Make<long>(x => x);
        if (item is KeyDataViewType)
        {
            var ids = KeyIds(col, itemTexts);
            var g = row.GetGetter<VBuffer<uint>>(col);
            VBuffer<uint> buf = default;
            return (ref int[] v) =>
            {
                g(ref buf);
                v = buf.DenseValues().Where(k => k != 0).Select(k => FromKey(ids, k, n)).Where(x => x != 0).ToArray();
            };
        }
        if (item == NumberDataViewType.UInt32) return Make<uint>(x => x);
        if (item == NumberDataViewType.Single) return Make<float>(x => x);
        return Make<double>(x => x);
    }
}
