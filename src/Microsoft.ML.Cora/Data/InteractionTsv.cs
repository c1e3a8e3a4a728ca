using Microsoft.ML.Cora.IO;
using System.Globalization;
using System.Text;

namespace Microsoft.ML.Cora.Data;

/// <summary>
/// The TSV layout Cora reads and writes (the layout of CoLLM's MovieLens-1M split):
/// interactions <c>uid iid label timestamp not_cold his</c> (his = space-separated item ids, oldest first),
/// items <c>iid title</c>. UTF-8, tab-separated, header row first.
/// </summary>
public static class InteractionTsv
{
    /// <summary>The columns of an interaction file, in order (CoLLM's layout): user, item, label (1/0), timestamp, warm flag, history (space-separated item ids).</summary>
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

    /// <summary>Writes rows in this layout, atomically (a failed write leaves no partial file).</summary>
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
