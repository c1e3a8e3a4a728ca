using System.Globalization;
using System.Text;
using Microsoft.ML.Cora.IO;

namespace Microsoft.ML.Cora.Data;

/// <summary>
/// What the model remembers of each training user, for recommendations: the liked items in order (the prompt's history) and
/// every item the user was seen with (excluded from recommendations by default). Built from the training rows, saved with the model.
/// </summary>
public sealed class UserProfiles
{
    /// <summary>One user's profile.</summary>
    /// <param name="Liked">The items the user liked in training, oldest first (the prompt's history).</param>
    /// <param name="Seen">Every item the user was seen with in training, liked or not.</param>
    public sealed record Profile(int[] Liked, HashSet<int> Seen);
    private readonly Dictionary<int, Profile> _users;
    /// <summary>Profiles by user id.</summary>
    public UserProfiles(Dictionary<int, Profile> users) => _users = users;
    /// <summary>No profiles (models saved before profiles were kept).</summary>
    public static UserProfiles Empty { get; } = new(new());

    /// <summary>Users with a profile.</summary>
    public int Count => _users.Count;
    /// <summary>The users with a profile, in ascending order.</summary>
    public IEnumerable<int> UserIds => _users.Keys.OrderBy(u => u);

    /// <summary>How many training users liked each item (the retrieval fallback for users the CF stage does not know).</summary>
    public Dictionary<int, int> Popularity() => _popularity ??= _users.Values.SelectMany(p => p.Liked.Distinct()).GroupBy(i => i).ToDictionary(g => g.Key, g => g.Count());
    private Dictionary<int, int>? _popularity;
    /// <summary>The user's profile, if the model remembers one.</summary>
    public bool TryGet(int user, out Profile profile) => _users.TryGetValue(user, out profile!);

    /// <summary>The user's liked items, oldest first (empty for a user the model does not remember).</summary>
    public int[] Liked(int user) => _users.TryGetValue(user, out var p) ? p.Liked : Array.Empty<int>();

    /// <summary>
    /// From rows in data order: a user's liked list is the history of their last row followed by the items they liked in later
    /// rows of the data (once each); seen = every item of their rows and histories.
    /// </summary>
    public static UserProfiles FromRows(IEnumerable<Interaction> rows)
    {
        var last = new Dictionary<int, Interaction>();
        var positives = new Dictionary<int, List<int>>();
        var seen = new Dictionary<int, HashSet<int>>();
        foreach (var r in rows)
        {
            last[r.UserId] = r;
            if (!seen.TryGetValue(r.UserId, out var s)) seen[r.UserId] = s = new HashSet<int>();
            s.Add(r.ItemId);
            foreach (var h in r.History) s.Add(h);
            if (r.Label)
            {
                if (!positives.TryGetValue(r.UserId, out var p)) positives[r.UserId] = p = new();
                p.Add(r.ItemId);
            }
        }
        var users = new Dictionary<int, Profile>();
        foreach (var (u, r) in last)
        {
            var liked = r.History.Where(i => i != 0).ToList();
            var set = liked.ToHashSet();
            foreach (var item in positives.GetValueOrDefault(u) ?? new())
                if (set.Add(item)) liked.Add(item);
            users[u] = new Profile(liked.ToArray(), seen[u]);
        }
        return new UserProfiles(users);
    }

    /// <summary>TSV: <c>uid liked seen</c>, id lists space-separated.</summary>
    public void Write(Stream stream)
    {
        var sb = new StringBuilder("uid\tliked\tseen\n");
        foreach (var (u, p) in _users.OrderBy(kv => kv.Key))
            sb.Append(u).Append('\t').Append(string.Join(' ', p.Liked)).Append('\t').Append(string.Join(' ', p.Seen.OrderBy(x => x))).Append('\n');
        stream.Write(new UTF8Encoding(false).GetBytes(sb.ToString()));
    }

    /// <summary>Reads profiles as <see cref="Write(Stream)"/> wrote them; errors name <paramref name="name"/> and the line.</summary>
    public static UserProfiles Read(Stream stream, string name)
    {
        using var r = new StreamReader(stream, new UTF8Encoding(false, throwOnInvalidBytes: true));
        var header = r.ReadLine();
        if (header != "uid\tliked\tseen") throw new InvalidDataException($"{name}: expected the header 'uid<TAB>liked<TAB>seen'.");
        var users = new Dictionary<int, Profile>();
        int line = 1;
        for (string? l; (l = r.ReadLine()) is not null;)
        {
            line++;
            if (l.Length == 0) continue;
            var f = l.Split('\t');
            int[] Ids(string s) => s.Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(x => int.TryParse(x, NumberStyles.Integer, CultureInfo.InvariantCulture, out var v) && v >= 0 ? v : throw new InvalidDataException($"{name}: line {line}: '{ErrorText.Elide(x)}' is not an item id.")).ToArray();
            if (f.Length != 3 || !int.TryParse(f[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out var u))
                throw new InvalidDataException($"{name}: line {line}: expected 'uid<TAB>liked<TAB>seen'.");
            users[u] = new Profile(Ids(f[1]), Ids(f[2]).ToHashSet());
        }
        return new UserProfiles(users);
    }
}
