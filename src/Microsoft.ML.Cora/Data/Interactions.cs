using Microsoft.ML.Cora.IO;
using System.Globalization;
using System.Text;

namespace Microsoft.ML.Cora.Data;

/// <summary>One labelled interaction: did <see cref="UserId"/> like <see cref="ItemId"/>?</summary>
/// <param name="History">The user's earlier liked items, oldest first (0 = padding, ignored).</param>
/// <param name="NotCold">True when both the user and the item occur in the training split (a warm row).</param>
public sealed record Interaction(int UserId, int ItemId, bool Label, long Timestamp, bool NotCold, int[] History);

/// <summary>Checks on sets of interactions that must hold before any work starts.</summary>
public static class InteractionChecks
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

/// <summary>
/// The TSV layout Cora reads and writes (the layout of CoLLM's MovieLens-1M split):
/// interactions <c>uid iid label timestamp not_cold his</c> (his = space-separated item ids, oldest first),
/// items <c>iid title</c>. UTF-8, tab-separated, header row first.
/// </summary>
public static class InteractionTsv
{
    public static readonly string[] Columns = { "uid", "iid", "label", "timestamp", "not_cold", "his" };

    /// <summary>Reads an interactions file; every error names the file, the line and the column.</summary>
    /// <param name="maxRows">Read at most this many rows (0 = all).</param>
    /// <param name="notice">Told what was done to the rows that were not read as written (exact repeats kept once).</param>
    /// <remarks>A row that repeats an earlier one (same user, item and timestamp) with the same label is kept once and counted in
    /// <paramref name="notice"/>; with another label the file is refused, naming both lines (which one holds is not knowable).</remarks>
    public static List<Interaction> Read(string path, int maxRows = 0, Action<string>? notice = null)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Interactions file not found: '{path}'.", path);
        FileChecks.RequireRegularFile(path, "Interactions file");
        using var reader = new StreamReader(path, new UTF8Encoding(false, throwOnInvalidBytes: true));
        string? header;
        try { header = reader.ReadLine(); }
        catch (DecoderFallbackException) { throw new InvalidDataException($"{path}: not valid UTF-8 text; save the file as UTF-8."); }
        if (header is null) throw new InvalidDataException($"{path}: the file is empty; expected a header row '{string.Join("\\t", Columns)}'.");
        var names = header.TrimEnd('\r').Split('\t');
        if (names.Length == 1 && (header.Contains(',') || header.Contains(';')))
            throw new InvalidDataException($"{path}: the header has no tabs; the file must be tab-separated (found ',' or ';' separators).");
        var repeated = names.Select((n, i) => (n, i)).Where(x => x.n.Length > 0).GroupBy(x => x.n).FirstOrDefault(g => g.Count() > 1);
        if (repeated is not null)
            throw new InvalidDataException($"{path}: the header names column '{ErrorText.Elide(repeated.Key, 40)}' {repeated.Count()} times (columns {string.Join(", ", repeated.Select(x => x.i + 1))}); name each column once.");
        var idx = new Dictionary<string, int>();
        foreach (var c in Columns)
        {
            int i = Array.IndexOf(names, c);
            if (i < 0 && c is not ("timestamp" or "not_cold" or "his"))
                throw new InvalidDataException($"{path}: missing column '{c}'. Required: uid, iid, label; optional: timestamp, not_cold, his. Found: {string.Join(", ", names)}.");
            idx[c] = i;
        }
        var rows = new List<Interaction>();
        var seen = new Dictionary<(int, int, long), (int line, bool label)>();
        int repeats = 0;
        int lineNo = 1;
        string? line;
        while (true)
        {
            try { line = reader.ReadLine(); }
            catch (DecoderFallbackException) { throw new InvalidDataException($"{path}: not valid UTF-8 text near line {lineNo + 1}; save the file as UTF-8."); }
            if (line is null) break;
            lineNo++;
            line = line.TrimEnd('\r');
            if (line.Length == 0) continue;
            var f = line.Split('\t');
            if (f.Length < names.Length)
                throw new InvalidDataException($"{path}: line {lineNo} has {f.Length} fields, the header has {names.Length}.");
            int Int(string col)
            {
                var s = f[idx[col]];
                if (!int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) || v < 0)
                    throw new InvalidDataException($"{path}: line {lineNo}, column '{col}': '{s}' is not a non-negative integer id.");
                return v;
            }
            bool Flag(string col)
            {
                var s = f[idx[col]];
                return s switch
                {
                    "1" => true, "0" => false,
                    _ => throw new InvalidDataException($"{path}: line {lineNo}, column '{col}': '{s}' is not 0 or 1."),
                };
            }
            long ts = 0;
            if (idx["timestamp"] >= 0 && !long.TryParse(f[idx["timestamp"]], NumberStyles.Integer, CultureInfo.InvariantCulture, out ts))
                throw new InvalidDataException($"{path}: line {lineNo}, column 'timestamp': '{f[idx["timestamp"]]}' is not an integer.");
            int[] his = Array.Empty<int>();
            if (idx["his"] >= 0 && f[idx["his"]].Length > 0)
            {
                var parts = f[idx["his"]].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                his = new int[parts.Length];
                for (int k = 0; k < parts.Length; k++)
                    if (!int.TryParse(parts[k], NumberStyles.Integer, CultureInfo.InvariantCulture, out his[k]) || his[k] < 0)
                        throw new InvalidDataException($"{path}: line {lineNo}, column 'his': '{parts[k]}' is not an item id.");
                his = his.Where(h => h != 0).ToArray();
            }
            var row = new Interaction(Int("uid"), Int("iid"), Flag("label"), ts, idx["not_cold"] < 0 || Flag("not_cold"), his);
            // Repeats (same user, item and time) are kept once: they carry no information and bias metrics. With another label
            // the file contradicts itself.
            if (seen.TryGetValue((row.UserId, row.ItemId, row.Timestamp), out var first))
            {
                if (first.label != row.Label)
                    throw new InvalidDataException($"{path}: lines {first.line} and {lineNo} give user {row.UserId}, item {row.ItemId} at time {row.Timestamp} labels {(first.label ? 1 : 0)} and {(row.Label ? 1 : 0)}; keep the one that is right.");
                repeats++;
                continue;
            }
            seen[(row.UserId, row.ItemId, row.Timestamp)] = (lineNo, row.Label);
            rows.Add(row);
            if (maxRows > 0 && rows.Count >= maxRows) break;
        }
        if (rows.Count == 0) throw new InvalidDataException($"{path}: no data rows after the header.");
        if (repeats > 0) notice?.Invoke($"{path}: {repeats} row(s) repeat an earlier row (same user, item, time and label) and were read once; {rows.Count} rows read.");
        return rows;
    }

    public static void Write(string path, IEnumerable<Interaction> rows)
    {
        var sb = new StringBuilder();
        sb.Append(string.Join('\t', Columns)).Append('\n');
        foreach (var r in rows)
            sb.Append(r.UserId).Append('\t').Append(r.ItemId).Append('\t').Append(r.Label ? 1 : 0).Append('\t').Append(r.Timestamp)
              .Append('\t').Append(r.NotCold ? 1 : 0).Append('\t').Append(string.Join(' ', new[] { 0 }.Concat(r.History))).Append('\n');
        IO.AtomicFile.Write(path, s => { var b = new UTF8Encoding(false).GetBytes(sb.ToString()); s.Write(b); });
    }
}

/// <summary>
/// The item catalog: id -> title. One text policy everywhere: titles are cleaned when they enter the catalog (tabs, line breaks
/// and other control characters become one space; leading/trailing spaces trimmed), so what is saved always loads back equal;
/// files are strict UTF-8.
/// </summary>
public sealed class ItemCatalog
{
    private readonly Dictionary<int, string> _titles;
    public ItemCatalog(IEnumerable<KeyValuePair<int, string>> titles)
    {
        _titles = new Dictionary<int, string>();
        foreach (var (id, t) in titles) _titles[id] = CleanTitle(t);
    }
    public IReadOnlyDictionary<int, string> Titles => _titles;
    public int Count => _titles.Count;
    public bool Contains(int id) => _titles.ContainsKey(id);

    /// <summary>The cleaned form of a title (the form stored and written).</summary>
    public static string CleanTitle(string title)
    {
        ArgumentNullException.ThrowIfNull(title);
        var sb = new StringBuilder(title.Length);
        bool space = false;
        foreach (char c in title)
        {
            if (char.IsControl(c) || c == '\u2028' || c == '\u2029') { space = true; continue; }
            if (space && sb.Length > 0) sb.Append(' ');
            space = false;
            sb.Append(c);
        }
        return sb.ToString().Trim();
    }

    /// <summary>A catalog with these titles added or replaced (e.g. items that appeared after training).</summary>
    public ItemCatalog With(IEnumerable<KeyValuePair<int, string>> titles) => new(_titles.Concat(titles).GroupBy(kv => kv.Key).Select(g => g.Last()));

    /// <summary>Up to <paramref name="max"/> distinct target item ids of <paramref name="rows"/> that have no title.</summary>
    public List<int> MissingTargets(IEnumerable<Interaction> rows, int max = 5) =>
        rows.Select(r => r.ItemId).Where(i => !Contains(i)).Distinct().Take(max).ToList();

    /// <summary>The message for items without a title, naming the ways to supply one.</summary>
    public static string MissingTitleMessage(IReadOnlyCollection<int> items) =>
        $"item(s) {string.Join(", ", items)} have no title in the item catalog. Add them to the items file / ItemTitles, pass titles with the " +
        "data (Options.TitleColumnName), or add them to a loaded model with CoraTransformer.AddItems(...).";

    public string Title(int id) => _titles.TryGetValue(id, out var t) ? t
        : throw new KeyNotFoundException(MissingTitleMessage(new[] { id }));

    /// <summary>Reads <c>iid\ttitle</c> (strict UTF-8); titles may contain commas and quotes (the title is everything after the first tab).</summary>
    public static ItemCatalog Read(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"Items file not found: '{path}'.", path);
        FileChecks.RequireRegularFile(path, "Items file");
        using var fs = File.OpenRead(path);
        return Read(fs, path);
    }

    public static ItemCatalog Read(Stream stream, string name)
    {
        string[] lines;
        try
        {
            using var reader = new StreamReader(stream, new UTF8Encoding(false, throwOnInvalidBytes: true), detectEncodingFromByteOrderMarks: false);
            lines = reader.ReadToEnd().Split('\n');
        }
        catch (DecoderFallbackException e) { throw new InvalidDataException($"{name}: not valid UTF-8 text ({e.Message.Split('.')[0]}); save the file as UTF-8.", e); }
        if (lines.Length == 0 || lines.All(l => l.Trim().Length == 0)) throw new InvalidDataException($"{name}: the file is empty; expected a header 'iid\\ttitle'.");
        var head = lines[0].TrimStart('\uFEFF').TrimEnd('\r').Split('\t');
        if (head.Length < 2 || head[0] != "iid" || head[1] != "title")
            throw new InvalidDataException($"{name}: expected the header 'iid<TAB>title', found '{ErrorText.Elide(lines[0])}'.");
        var d = new Dictionary<int, string>();
        for (int i = 1; i < lines.Length; i++)
        {
            var l = lines[i].TrimEnd('\r');
            if (l.Length == 0) continue;
            int tab = l.IndexOf('\t');
            if (tab < 0 || !int.TryParse(l.AsSpan(0, tab), NumberStyles.Integer, CultureInfo.InvariantCulture, out var id) || id < 0)
                throw new InvalidDataException($"{name}: line {i + 1}: expected '<id><TAB><title>' with a non-negative id, found '{ErrorText.Elide(l)}'.");
            if (!d.TryAdd(id, l[(tab + 1)..]))
                throw new InvalidDataException($"{name}: line {i + 1}: item {id} appears twice.");
        }
        return new ItemCatalog(d);
    }

    public void Write(string path) => IO.AtomicFile.Write(path, Write);

    public void Write(Stream stream)
    {
        var sb = new StringBuilder("iid\ttitle\n");
        foreach (var (id, t) in _titles.OrderBy(kv => kv.Key)) sb.Append(id).Append('\t').Append(t).Append('\n');
        stream.Write(new UTF8Encoding(false).GetBytes(sb.ToString()));
    }
}
