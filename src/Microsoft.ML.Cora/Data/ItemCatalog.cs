using Microsoft.ML.Cora.IO;
using System.Globalization;
using System.Text;

namespace Microsoft.ML.Cora.Data;

/// <summary>
/// The item catalog: id -> title. One text policy everywhere: titles are cleaned when they enter the catalog (tabs, line breaks
/// and other control characters become one space; leading/trailing spaces trimmed), so what is saved always loads back equal;
/// files are strict UTF-8.
/// </summary>
public sealed class ItemCatalog
{
    private readonly Dictionary<int, string> _titles;
    /// <summary>A catalog of these titles by item id (cleaned: see <see cref="CleanTitle"/>; a later duplicate id wins).</summary>
    public ItemCatalog(IEnumerable<KeyValuePair<int, string>> titles)
    {
        _titles = new Dictionary<int, string>();
        foreach (var (id, t) in titles) _titles[id] = CleanTitle(t);
    }
    /// <summary>Every title, by item id.</summary>
    public IReadOnlyDictionary<int, string> Titles => _titles;
    /// <summary>Items in the catalog.</summary>
    public int Count => _titles.Count;
    /// <summary>Whether the item has a title.</summary>
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

    /// <summary>The item's title; throws naming the item and how to add it when it has none.</summary>
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

    /// <summary>Reads an <c>iid&lt;TAB&gt;title</c> file from a stream; errors name <paramref name="name"/> and the line.</summary>
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

    /// <summary>Writes the catalog as <c>iid&lt;TAB&gt;title</c>, atomically.</summary>
    public void Write(string path) => IO.AtomicFile.Write(path, Write);

    /// <summary>Writes the catalog as <c>iid&lt;TAB&gt;title</c> to a stream.</summary>
    public void Write(Stream stream)
    {
        var sb = new StringBuilder("iid\ttitle\n");
        foreach (var (id, t) in _titles.OrderBy(kv => kv.Key)) sb.Append(id).Append('\t').Append(t).Append('\n');
        stream.Write(new UTF8Encoding(false).GetBytes(sb.ToString()));
    }
}
